// Bundle every view entry js/src/<view>.js (with the shared modules of js/src/lib/) into
// featwidget/static/<view>.js as a self-contained ES module for anywidget, plus the shared stylesheet.
// No CDN imports: everything a view needs is inside its bundle, so teaching labs work offline.
import * as esbuild from "esbuild";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, "src");
const outdir = join(here, "..", "featwidget", "static");
const views = readdirSync(src).filter((f) => f.endsWith(".js")).sort();

const common = { bundle: true, minify: true, legalComments: "none", logLevel: "info", target: "es2020" };
const jobs = [
  { ...common, entryPoints: views.map((f) => join(src, f)), outdir, format: "esm", platform: "browser" },
  { ...common, entryPoints: [join(src, "style.css")], outfile: join(outdir, "featwidget.css") },
];

if (process.argv.includes("--watch")) {
  for (const options of jobs) await (await esbuild.context(options)).watch();
  console.log(`watching ${views.join(", ")}`);
} else {
  for (const options of jobs) await esbuild.build(options);
}
