// Builds console/dist/ from console/src/: one bundle per page (esbuild, ES2020, minified) and
// its HTML shell (no inline script or style: the pages' CSP allows none). Run by bin/run and bin/test after `npm ci`
// (docs/console.md "Build"). Prints each file's gzipped size and the console's first load.
import { build } from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const dist = new URL("./dist/", import.meta.url).pathname;
rmSync(dist, { recursive: true, force: true });
mkdirSync(`${dist}assets`, { recursive: true });

await build({
  entryPoints: { console: "src/console/main.js", member: "src/member/main.js" },
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2020",
  outdir: `${dist}assets`,
  legalComments: "none",
  logLevel: "warning",
});
const shell = (title, name) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/assets/${name}.css">
<script type="module" src="/console/assets/${name}.js"></script>
</head>
<body><div id="app"><p class="loading">Loading…</p></div></body>
</html>
`;
writeFileSync(`${dist}console.html`, shell("SaveBucks console", "console"));
writeFileSync(`${dist}member.html`, shell("SaveBucks demo", "member"));

const gz = (file) => gzipSync(readFileSync(`${dist}${file}`)).length;
const firstLoad = ["console.html", "assets/console.js", "assets/console.css"];
for (const f of firstLoad) console.log(`console: ${f} ${(gz(f) / 1024).toFixed(1)} KB gzipped`);
console.log(`console: first load ${(firstLoad.reduce((n, f) => n + gz(f), 0) / 1024).toFixed(1)} KB gzipped`);
