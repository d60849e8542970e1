# An aws-cli plugin for `npm run bench:s3` only. botocore sends `Expect: 100-continue` with every
# upload; after a zero-length PUT (a DB has empty WAL files) the server answers at once, without
# 100, and botocore leaves the pooled connection parsing the *next* response against that stale
# status line: MissingHeaderBodySeparatorDefect, then KeyError 'ETag' (boto/botocore#3755).
# Dropping the header is the workaround given there (it is not signed); it also spares aws-cli
# its one-second wait per part for a `100 Continue` that Go servers send only when asked to read.
def _drop_expect(request, **kwargs):
    request.headers.pop('Expect', None)


def awscli_initialize(cli):
    cli.register('before-send.s3', _drop_expect)
