"""Schemathesis hooks for translation-front's contract run (SCHEMATHESIS_HOOKS).

`POST /api/v1/translate/batch/export` reads NDJSON: its document describes
the body as an array of batch lines, each item one line. Schemathesis has no
serializer for application/x-ndjson; this is the one the document describes.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode()
