"""Vendor the browser JavaScript that bertviz's views need, so they render with no CDN.

bertviz 1.4.1 loads require.js, d3 and jquery from cdnjs at view time. This script fetches the
same libraries from the npm registry with `npm pack` (checking the registry's sha512 integrity),
and writes the files the app inlines into its bertviz iframe, plus their licences and a
README naming source, version and checksum:

    assets/vendor/require-2.3.6.js      requirejs@2.3.6  (MIT)
    assets/vendor/d3-5.7.0.min.js       d3@5.7.0         (BSD-3-Clause)
    assets/vendor/jquery-2.2.4.min.js   jquery@2.2.4     (MIT)

Run: python scripts/vendor_bertviz_js.py   (needs `npm` on PATH and access to registry.npmjs.org)
"""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "assets" / "vendor"

# (npm package, version, file inside the tarball, file we write, licence file inside the tarball)
PACKAGES = (
    ("d3", "5.7.0", "package/dist/d3.min.js", "d3-5.7.0.min.js", "package/LICENSE"),
    ("jquery", "2.2.4", "package/dist/jquery.min.js", "jquery-2.2.4.min.js", "package/LICENSE.txt"),
    # requirejs ships no licence file in its npm tarball; its header names the MIT licence.
    ("requirejs", "2.3.6", "package/require.js", "require-2.3.6.js", None),
)

REQUIREJS_LICENSE = """\
requirejs 2.3.6 — MIT License (as stated in the header of require.js:
"Copyright jQuery Foundation and other contributors. Released under MIT license,
https://github.com/requirejs/requirejs/blob/master/LICENSE").

Permission is hereby granted, free of charge, to any person obtaining a copy of this software
and associated documentation files (the "Software"), to deal in the Software without
restriction, including without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def npm_json(*args: str):
    out = subprocess.run(["npm", *args, "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def fetch(name: str, version: str, workdir: Path) -> tuple[Path, dict]:
    """npm pack the exact version into workdir; check the tarball against the registry's sha512."""
    dist = npm_json("view", f"{name}@{version}", "dist")
    subprocess.run(["npm", "pack", f"{name}@{version}", "--pack-destination", str(workdir)],
                   check=True, capture_output=True)
    tgz = workdir / f"{name}-{version}.tgz"
    algo, _, expected = dist["integrity"].partition("-")
    digest = base64.b64encode(hashlib.new(algo, tgz.read_bytes()).digest()).decode()
    if digest != expected:
        raise SystemExit(f"{tgz.name}: integrity mismatch ({digest} != {expected})")
    return tgz, dist


def without_source_map(text: str) -> str:
    """Drop the sourceMappingURL comment: the map is not vendored, and the page must not ask for it."""
    return "\n".join(line for line in text.splitlines() if "sourceMappingURL=" not in line) + "\n"


def main() -> None:
    VENDOR.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, version, member, target, licence in PACKAGES:
            tgz, dist = fetch(name, version, Path(tmp))
            with tarfile.open(tgz) as tar:
                text = tar.extractfile(member).read().decode("utf-8")
                lic = tar.extractfile(licence).read().decode("utf-8") if licence else REQUIREJS_LICENSE
            text = without_source_map(text)
            if "</script" in text.lower():
                raise SystemExit(f"{target} contains '</script' and cannot be inlined as is")
            (VENDOR / target).write_text(text, encoding="utf-8")
            (VENDOR / f"LICENSE-{name}.txt").write_text(lic, encoding="utf-8")
            sha = hashlib.sha256(text.encode()).hexdigest()
            rows.append(f"| `{target}` | {name}@{version} | `{member}` | {dist['tarball']} | "
                        f"`{sha[:16]}…` | LICENSE-{name}.txt |")
            print(f"wrote assets/vendor/{target} ({len(text):,} bytes)")
    readme = [
        "# Vendored browser JavaScript (bertviz views, no CDN)",
        "",
        "Built by `python scripts/vendor_bertviz_js.py` from the npm registry (tarball integrity",
        "checked against the registry's sha512). bertviz 1.4.1 would load these from cdnjs; the app",
        "inlines them into the bertviz iframe instead (engine/embeddings/bertviz_page.py). The only change made",
        "to the files is removing the `sourceMappingURL` comment.",
        "",
        "| file | package | path in tarball | source | sha256 of file | licence |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    (VENDOR / "README.md").write_text("\n".join(readme), encoding="utf-8")


if __name__ == "__main__":
    main()
