#!/usr/bin/env bash
# The main job: build, then start a local POP3 server with a demo mailbox,
# the bridge allowing it, and the web page. `npm start -- --allow HOST:PORT`
# instead starts only the bridge (and page) for a server you name.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
exec node scripts/run.mjs "$@"
