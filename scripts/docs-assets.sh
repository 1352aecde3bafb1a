#!/usr/bin/env bash
# The API documentation's browser assets (Swagger UI for /docs, ReDoc for /redoc), taken from the
# npm registry at install time and served from the package, so that the pages work without
# internet access (FastAPI's defaults load them from a CDN). Pinned versions, checked tarballs.
# Usage: scripts/docs-assets.sh [DEST]  (default: src/shelfwise/serving/_docs_assets)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-src/shelfwise/serving/_docs_assets}
SWAGGER=swagger-ui-dist-5.35.0
SWAGGER_SHA256=1b8e891893404ea4c3558b6a87e2a3e494e7eedba41168c2ece5800a391a6ea6
REDOC=redoc-2.5.4
REDOC_SHA256=44922df4d0eb45c1b066c09ec251e6bd9bd7ded16bc69e87613337b9d911a56e
if [ "$(cat "$DEST/VERSIONS" 2>/dev/null)" = "$SWAGGER $REDOC offline-1" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "error: npm is needed to fetch the API docs assets ($SWAGGER, $REDOC)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "${SWAGGER%-*}@${SWAGGER##*-}" "${REDOC%-*}@${REDOC##*-}" >/dev/null)
echo "$SWAGGER_SHA256  $tmp/$SWAGGER.tgz" | sha256sum --check --quiet
echo "$REDOC_SHA256  $tmp/$REDOC.tgz" | sha256sum --check --quiet
mkdir -p "$tmp/s" "$tmp/r"
tar -xzf "$tmp/$SWAGGER.tgz" -C "$tmp/s"
tar -xzf "$tmp/$REDOC.tgz" -C "$tmp/r"
rm -rf "$DEST.tmp" && mkdir -p "$DEST.tmp"
cp "$tmp/s/package/swagger-ui-bundle.js" "$tmp/s/package/swagger-ui.css" "$tmp/s/package/favicon-32x32.png" "$DEST.tmp/"
cp "$tmp/s/package/LICENSE" "$DEST.tmp/LICENSE.swagger-ui"
cp "$tmp/s/package/NOTICE" "$DEST.tmp/NOTICE.swagger-ui"
# ReDoc's side menu loads Redocly's logo from their CDN: the reference is emptied (the image then
# hides itself, as it does offline), so that the page asks nothing of the outside
sed 's#"https://cdn.redoc.ly/redoc/logo-mini.svg"#""#' "$tmp/r/package/bundles/redoc.standalone.js" \
  > "$DEST.tmp/redoc.standalone.js"
if grep -q "cdn.redoc.ly" "$DEST.tmp/redoc.standalone.js"; then
  echo "error: $REDOC still references cdn.redoc.ly" >&2
  exit 1
fi
cp "$tmp/r/package/LICENSE" "$DEST.tmp/LICENSE.redoc"
echo "$SWAGGER $REDOC offline-1" > "$DEST.tmp/VERSIONS"
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST"
echo "API docs assets: $SWAGGER, $REDOC in $DEST"
