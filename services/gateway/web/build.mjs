// Bundles src/ into dist/ (index.html, web/app.js, web/app.css): what the gateway serves at /.
// No CDN: every library is bundled, so the page works offline. `make setup` runs this.
import { build } from "esbuild";
import { copyFile, mkdir, rename, rm } from "node:fs/promises";

const out = "dist";
const staging = `${out}.partial`;

await rm(staging, { recursive: true, force: true });
await mkdir(`${staging}/web`, { recursive: true });
await build({
  entryPoints: { app: "src/main.jsx" },
  outdir: `${staging}/web`,
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "esm",
  target: ["es2022"],
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "linked",
  logLevel: "warning",
});
await copyFile("src/index.html", `${staging}/index.html`);
// Swap in the finished bundle at once: the gateway never serves half a build.
await rm(out, { recursive: true, force: true });
await rename(staging, out);
console.log(`built ${out}/`);
