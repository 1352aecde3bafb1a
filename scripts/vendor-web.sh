#!/usr/bin/env bash
# Re-fetch the console's browser libraries from the npm registry (run by hand to upgrade them; the
# minified files are committed under src/shelfwise/web/static/vendor/, so installing shelfwise
# needs neither npm nor a network, and nothing is fetched from a CDN at run time).
# htmx.org is 0BSD, uPlot MIT: both licences are copied beside the files.
set -euo pipefail
HTMX=2.0.11   # htmx 2.x (4.x is a new major)
UPLOT=1.6.32
dest="$(cd "$(dirname "$0")/.." && pwd)/src/shelfwise/web/static/vendor"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent "htmx.org@$HTMX" "uplot@$UPLOT" >/dev/null
mkdir h u
tar xzf "htmx.org-$HTMX.tgz" -C h
tar xzf "uplot-$UPLOT.tgz" -C u
cp h/package/dist/htmx.min.js "$dest/"
cp h/package/LICENSE "$dest/htmx.LICENSE"
cp u/package/dist/uPlot.iife.min.js u/package/dist/uPlot.min.css "$dest/"
cp u/package/LICENSE "$dest/uPlot.LICENSE"
(cd "$dest" && sha256sum htmx.min.js uPlot.iife.min.js uPlot.min.css)
