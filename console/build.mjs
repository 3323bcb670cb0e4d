// Builds console/dist/ from console/src/: one bundle per page (esbuild, ES2020, minified),
// the HTML shells copied as they are. Run by bin/run and bin/test after `npm ci`
// (docs/console.md "Build"). Prints each file's gzipped size and the console's first load.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
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
for (const page of ["console.html", "member.html"]) copyFileSync(`src/${page}`, `${dist}${page}`);

const gz = (file) => gzipSync(readFileSync(`${dist}${file}`)).length;
const firstLoad = ["console.html", "assets/console.js", "assets/console.css"];
for (const f of firstLoad) console.log(`console: ${f} ${(gz(f) / 1024).toFixed(1)} KB gzipped`);
console.log(`console: first load ${(firstLoad.reduce((n, f) => n + gz(f), 0) / 1024).toFixed(1)} KB gzipped`);
