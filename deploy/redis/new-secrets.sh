#!/bin/sh
# New random passwords for tradewire's three Redis users: one file each under
# deploy/redis/secrets/ (compose secrets of the redis service, never committed), and the
# service's URL in .env, where docker compose reads TRADEWIRE_REDIS_URL from. Existing
# files are kept: rotate by deleting them (and the .env line) first.
#   sh deploy/redis/new-secrets.sh [PROJECT_DIR]      (default: the repository root)
set -eu
ROOT=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
SECRETS="$ROOT/deploy/redis/secrets"
mkdir -p "$SECRETS"
umask 077
for role in admin service consumer; do
    file="$SECRETS/redis_${role}_password"
    [ -s "$file" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$file"
done
if ! grep -qs '^TRADEWIRE_REDIS_URL=' "$ROOT/.env"; then
    echo "TRADEWIRE_REDIS_URL=redis://tradewire:$(cat "$SECRETS/redis_service_password")@redis:6379/0" >> "$ROOT/.env"
fi
echo "passwords in $SECRETS; TRADEWIRE_REDIS_URL in $ROOT/.env"
