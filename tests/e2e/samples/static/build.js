// Builds the site into dist/ with plain Node: no dependencies, so `npm ci` needs no network.
// Every page from src/ gets a footer naming the Node.js and CPU that built it, which shows that
// the build ran once on the build platform even in the arm images.
"use strict";

const fs = require("fs");
const path = require("path");

const SRC = path.join(__dirname, "src");
const OUT = path.join(__dirname, "dist");

function pages(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? pages(full) : [full];
  });
}

fs.rmSync(OUT, { recursive: true, force: true });
const footer = `built by Node.js ${process.version} on ${process.platform}/${process.arch}`;
for (const file of pages(SRC)) {
  const target = path.join(OUT, path.relative(SRC, file));
  fs.mkdirSync(path.dirname(target), { recursive: true });
  if (file.endsWith(".html")) {
    fs.writeFileSync(target, fs.readFileSync(file, "utf8").replace("{{built_by}}", footer));
  } else {
    fs.copyFileSync(file, target); // stylesheets, scripts and images as they are
  }
  console.log(`wrote ${path.relative(__dirname, target)}`);
}
