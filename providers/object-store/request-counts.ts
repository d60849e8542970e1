// Requests an object-store env has sent, by verb: what a command costs on a metered store.
// LIST is told apart from GET (a listing page is priced and throttled as its own class).

export type RequestVerb = 'GET' | 'HEAD' | 'LIST' | 'PUT' | 'POST' | 'DELETE';

export class RequestCounter {
  private readonly counts = new Map<string, number>();

  add(verb: string): void {
    this.counts.set(verb, (this.counts.get(verb) ?? 0) + 1);
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b)));
  }
}
