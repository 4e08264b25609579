#!/usr/bin/env bash
# `npm start`: build what is needed, then `ws-bridge demo` — a demo POP3
# mailbox on loopback (plain/STLS and implicit TLS, with a certificate it
# makes itself), the bridge allowing exactly that server, and the pages
# with its settings filled in. It prints the URL, the ports and the user.
#
#   npm start                                  the demo (http://127.0.0.1:8080/)
#   PORT=9000 npm start                        the demo on another port
#   npm start -- --allow pop.example.com:995   the bridge and the pages for a server you name
#                                              (any ws-bridge flags; --listen/--serve have defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
case "${BRIDGE_PROFILE:-dev}" in
  dev) bin=target/debug/ws-bridge ;;
  *) bin="target/$BRIDGE_PROFILE/ws-bridge" ;;
esac
listen="127.0.0.1:${PORT:-8080}"

if [ $# -eq 0 ]; then
  exec "$bin" demo --listen "$listen" --web web
fi
if [ "$1" = demo ]; then
  shift
  exec "$bin" demo --listen "$listen" --web web "$@"
fi
# A server of your own: ws-bridge with your flags, serving the pages too.
extra=()
[[ " $* " == *" --listen"* ]] || extra+=(--listen "$listen")
[[ " $* " == *" --serve"* ]] || extra+=(--serve web)
echo "pages: http://$listen/ (checker) and http://$listen/playground.html — fill in your server"
exec "$bin" "${extra[@]}" "$@"
