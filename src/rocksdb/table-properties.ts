// Reads the table properties of a block-based SST (table/meta_blocks.cc) from three small
// reads: the footer, the metaindex block it points to, and the properties block the
// metaindex names. A backup needs them to name files by the DB session that wrote them.
import { open } from 'node:fs/promises';
import { CairnError, corruption, ioError, notFound } from '../errors.ts';
import { parseBlockEntries, verifyBlockChecksum } from './block.ts';
import { Cursor, toSafeNumber } from './coding.ts';
import { BLOCK_TRAILER_SIZE, decodeFooter, FOOTER_SIZE, readHandle, type BlockHandle, type Footer } from './table-footer.ts';

export interface TableProperties {
  /** From the footer: 0 for the legacy footer, else the footer's format_version. */
  formatVersion: number;
  dbId?: string;
  dbSessionId?: string;
  origFileNumber?: number;
  /** Every property as stored, by name. */
  raw: Map<string, Buffer>;
}

// Names from table/table_properties.cc (TablePropertiesNames) and sst_file_writer.cc.
export const PROP_DB_ID = 'rocksdb.creating.db.identity';
export const PROP_DB_SESSION_ID = 'rocksdb.creating.session.identity';
export const PROP_ORIGINAL_FILE_NUMBER = 'rocksdb.original.file.number';
const PROP_GLOBAL_SEQNO = 'rocksdb.external_sst_file.global_seqno';
const PROPERTIES_BLOCK = 'rocksdb.properties';
const PROPERTIES_BLOCK_OLD = 'rocksdb.stats'; // name used by RocksDB before 3.x

export type ReadAt = (offset: number, length: number) => Promise<Buffer>;

class SstReader {
  readonly readAt: ReadAt;
  readonly fileSize: number;
  readonly file: string | undefined;

  constructor(readAt: ReadAt, fileSize: number, file: string | undefined) {
    this.readAt = readAt;
    this.fileSize = fileSize;
    this.file = file;
  }

  fail(msg: string): never {
    throw corruption(`${this.file ?? 'SST'}: ${msg}`, { file: this.file });
  }

  async read(offset: number, length: number, what: string): Promise<Buffer> {
    const buf = await this.readAt(offset, length);
    if (buf.length < length) this.fail(`short read of ${what} (${buf.length} of ${length} bytes at ${offset})`);
    return buf.length === length ? buf : buf.subarray(0, length);
  }

  /** Reads a meta block and its trailer; meta blocks are always stored uncompressed. */
  async readMetaBlock(footer: Footer, handle: BlockHandle, what: string): Promise<Buffer> {
    if (handle.offset + handle.size + BLOCK_TRAILER_SIZE > footer.footerOffset) {
      this.fail(`${what} block handle (offset ${handle.offset}, size ${handle.size}) is outside the file`);
    }
    const withTrailer = await this.read(handle.offset, handle.size + BLOCK_TRAILER_SIZE, `${what} block`);
    const compression = withTrailer[handle.size];
    if (compression !== 0) this.fail(`${what} block is compressed (type ${compression})`);
    return withTrailer;
  }
}

function decodeHandle(value: Buffer): BlockHandle | undefined {
  return readHandle(new Cursor(value));
}

// Guards against a reader bug turning garbage into a RangeError instead of a corruption.
function rethrowAsCorruption(e: unknown, file: string | undefined): never {
  if (e instanceof RangeError) throw corruption(`${file ?? 'SST'}: malformed table (${e.message})`, { file, cause: e });
  throw e;
}

export async function parseTableProperties(readAt: ReadAt, fileSize: number, file?: string): Promise<TableProperties> {
  const r = new SstReader(readAt, fileSize, file);
  try {
    return await parse(r);
  } catch (e) {
    rethrowAsCorruption(e, file);
  }
}

async function parse(r: SstReader): Promise<TableProperties> {
  const tailLength = Math.min(r.fileSize, FOOTER_SIZE);
  const tail = await r.read(r.fileSize - tailLength, tailLength, 'footer');
  const footer = decodeFooter(tail, r.fileSize, r.file);

  const metaindex = await r.readMetaBlock(footer, footer.metaindex, 'metaindex');
  if (verifyBlockChecksum(metaindex, footer.checksumType, footer.baseContextChecksum, footer.metaindex.offset) === false) {
    r.fail(`metaindex block checksum mismatch at offset ${footer.metaindex.offset}`);
  }
  const metaEntries = parseBlockEntries(metaindex.subarray(0, footer.metaindex.size), 'metaindex', r.file);
  const entry =
    metaEntries.find((e) => e.key.toString('latin1') === PROPERTIES_BLOCK) ??
    metaEntries.find((e) => e.key.toString('latin1') === PROPERTIES_BLOCK_OLD) ??
    r.fail('cannot find the properties meta block');
  const handle = decodeHandle(entry.value) ?? r.fail('bad properties block handle');

  const props = await r.readMetaBlock(footer, handle, 'properties');
  const entries = parseBlockEntries(props.subarray(0, handle.size), 'properties', r.file);
  const raw = new Map<string, Buffer>();
  let last: Buffer | undefined;
  for (const e of entries) {
    if (last !== undefined && Buffer.compare(e.key, last) <= 0) r.fail('properties unsorted');
    last = e.key;
    raw.set(e.key.toString('latin1'), Buffer.from(e.value));
  }

  let ok = verifyBlockChecksum(props, footer.checksumType, footer.baseContextChecksum, handle.offset);
  if (ok === false) {
    // Ingestion with write_global_seqno rewrites this property in place after the
    // checksum was computed over a 0: RocksDB retries with the original value.
    const g = entries.find((e) => e.key.toString('latin1') === PROP_GLOBAL_SEQNO);
    if (g !== undefined && g.value.length >= 8) {
      const copy = Buffer.from(props);
      copy.fill(0, g.valueOffset, g.valueOffset + 8);
      ok = verifyBlockChecksum(copy, footer.checksumType, footer.baseContextChecksum, handle.offset);
    }
  }
  if (ok === false) r.fail(`properties block checksum mismatch at offset ${handle.offset}`);

  const result: TableProperties = { formatVersion: footer.formatVersion, raw };
  const dbId = raw.get(PROP_DB_ID);
  if (dbId !== undefined) result.dbId = dbId.toString('latin1');
  const session = raw.get(PROP_DB_SESSION_ID);
  if (session !== undefined) result.dbSessionId = session.toString('latin1');
  const orig = raw.get(PROP_ORIGINAL_FILE_NUMBER);
  if (orig !== undefined) {
    // RocksDB skips a malformed predefined property rather than failing the table.
    const v = new Cursor(orig).varint64();
    const n = v === undefined ? undefined : toSafeNumber(v);
    if (n !== undefined) result.origFileNumber = n;
  }
  return result;
}

export async function readTableProperties(path: string): Promise<TableProperties> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw notFound(`${path}: no such file`, { file: path, cause: e });
    throw ioError(`${path}: cannot open: ${(e as Error).message}`, { file: path, cause: e });
  }
  try {
    const { size } = await fh.stat();
    const handle = fh;
    const readAt: ReadAt = async (offset, length) => {
      const buf = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await handle.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    };
    return await parseTableProperties(readAt, size, path);
  } catch (e) {
    if (e instanceof CairnError) throw e;
    throw ioError(`${path}: cannot read: ${(e as Error).message}`, { file: path, cause: e });
  } finally {
    await fh.close();
  }
}
