"""Realistic-size copies of the plugins' sample apps, for `crossbuild.py --size realistic`.

The samples in tests/e2e/samples/ are hello-worlds: a build of one is mostly fixed costs
(start-up, export, push), which hides where the time of a real build goes. `grow(key, dest)`
copies a sample and adds what a small real service has, generated the same way on every run
(no randomness but a fixed seed), so two runs build the same bytes:

- go:     a net/http + encoding/json + html/template server and 60 files of handlers
          (about 7,000 lines): the standard library's HTTP and TLS stack is compiled per target;
- java:   200 classes (about 13,000 lines) beside Main;
- python: Django 5.2 with asgiref and sqlparse (8 MB of pure Python, from the stack's index)
          and 300 modules of the app's own code (about 14,000 lines);
- static: 400 pages, stylesheets and scripts plus 60 images (about 8 MB, the images
          incompressible) built by the sample's Node script.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "e2e" / "samples"


def grow(key: str, dest: Path) -> Path:
    """Copy the `key` sample into dest and grow it; returns dest."""
    shutil.copytree(SAMPLES / key, dest, dirs_exist_ok=True)
    {"go": _go, "java": _java, "python": _python, "static": _static}[key](dest)
    return dest


def _go(root: Path) -> None:
    handlers = root / "handlers"
    handlers.mkdir()
    for i in range(60):
        funcs = "\n".join(
            f"""
type Item{i}_{j} struct {{
	ID    int               `json:"id"`
	Name  string            `json:"name"`
	Tags  []string          `json:"tags"`
	Attrs map[string]string `json:"attrs"`
}}

func Handle{i}_{j}(w http.ResponseWriter, r *http.Request) {{
	items := make([]Item{i}_{j}, 0, 16)
	for k := 0; k < 16; k++ {{
		name := strings.Repeat(r.URL.Query().Get("q"), k%3) + strconv.Itoa(k*{j + 1})
		items = append(items, Item{i}_{j}{{ID: k, Name: name, Tags: strings.Fields(name)}})
	}}
	sort.Slice(items, func(a, b int) bool {{ return items[a].Name < items[b].Name }})
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(items); err != nil {{
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}}
}}"""
            for j in range(5)
        )
        routes = "\n".join(f'\tmux.HandleFunc("/h{i}/{j}", Handle{i}_{j})' for j in range(5))
        (handlers / f"h{i}.go").write_text(
            f"""package handlers

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
)
{funcs}

func Register{i}(mux *http.ServeMux) {{
{routes}
}}
"""
        )
    registers = "\n".join(f"\thandlers.Register{i}(mux)" for i in range(60))
    (root / "server.go").write_text(
        f"""package main

import (
	"html/template"
	"net/http"
	"os"

	"example.com/hello/handlers"
)

var page = template.Must(template.New("index").Parse("<h1>{{{{.}}}}</h1>"))

func serve() {{
	mux := http.NewServeMux()
{registers}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {{
		_ = page.Execute(w, r.URL.Path)
	}})
	if os.Getenv("SERVE") != "" {{
		_ = http.ListenAndServe(":8080", mux)
	}}
}}

func init() {{ serve() }}
"""
    )


def _java(root: Path) -> None:
    package = root / "src" / "main" / "java" / "com" / "example" / "crossport" / "gen"
    package.mkdir(parents=True)
    for i in range(200):
        methods = "\n".join(
            f"""
    public static Map<String, Integer> count{j}(List<String> words) {{
        Map<String, Integer> counts = new TreeMap<>();
        for (String word : words) {{
            String key = word.toLowerCase(Locale.ROOT) + "{i}.{j}";
            counts.merge(key, word.length() * {j + 1}, Integer::sum);
        }}
        return counts.entrySet().stream()
            .filter(e -> e.getValue() > {j})
            .collect(Collectors.toMap(Map.Entry::getKey, Map.Entry::getValue));
    }}"""
            for j in range(5)
        )
        (package / f"C{i}.java").write_text(
            f"""package com.example.crossport.gen;

import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Collectors;

public final class C{i} {{
    private C{i}() {{}}
{methods}
}}
"""
        )


def _python(root: Path) -> None:
    with (root / "requirements.txt").open("a") as fh:
        fh.write("django==5.2.8\n")
    package = root / "service"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for i in range(300):
        functions = "\n".join(
            f'''

def handler_{j}(request: dict[str, str]) -> dict[str, object]:
    """Answer request {i}.{j}."""
    words = sorted(request.get("q", "").split())
    counts: dict[str, int] = {{}}
    for word in words:
        counts[word] = counts.get(word, 0) + len(word) * {j + 1}
    return {{"module": {i}, "handler": {j}, "counts": counts}}'''
            for j in range(5)
        )
        (package / f"m{i}.py").write_text(f'"""Module {i} of the service."""\n{functions}\n')


def _static(root: Path) -> None:
    rng = random.Random(20261205)
    src = root / "src"
    for i in range(400):
        kind = ("html", "css", "js")[i % 3]
        folder = src / f"section{i % 20}"
        folder.mkdir(parents=True, exist_ok=True)
        words = " ".join(rng.choice(("lorem", "ipsum", "arm", "amd", "build")) for _ in range(800))
        body = {
            "html": f"<!DOCTYPE html><html><body><p>{words}</p>{{{{built_by}}}}</body></html>",
            "css": f"/* {words} */\n.c{i} {{ color: #{i:06x}; }}\n",
            "js": f"// {words}\nexport const v{i} = {i};\n",
        }[kind]
        (folder / f"page{i}.{kind}").write_text(body)
    images = src / "img"
    images.mkdir(parents=True)
    for i in range(60):
        (images / f"photo{i}.jpg").write_bytes(rng.randbytes(110_000))
