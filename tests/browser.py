"""Headless Chromium for page tests: a screenshot, and what a script inside the page saw (decoded images,
console errors). Debian's ``chromium`` package; tests skip with a reason when it is absent."""

import json
import re
import shutil
import subprocess

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars"]

# Runs in the page: records console errors and uncaught errors; on 'load' (every <img> loaded or failed)
# counts the images that decoded to a natural size, then writes the counts into <body data-...> for --dump-dom to report.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
const origError = console.error; console.error = (...a) => { window.__errors.push(a.join(' ')); origError(...a); };
window.addEventListener('load', () => {
  // after 'load' every <img> has loaded or failed; a loaded, decodable image has a natural size
  const ok = Array.from(document.images).map(i => i.complete && i.naturalWidth > 0);
  document.body.dataset.decoded = ok.filter(x => x).length;
  document.body.dataset.failed = ok.filter(x => !x).length;
  document.body.dataset.errors = JSON.stringify(window.__errors);
  document.body.dataset.probe = 'done';
});
</script>"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def probe_page(html_path, screenshot_path, width=1400, height=2400) -> dict:
    """Load a copy of the page with the probe in headless Chromium; return decoded/failed image counts and
    the errors the page logged, and write a full-size screenshot."""
    exe = chromium()
    text = html_path.read_text(encoding="utf-8")
    probed = html_path.with_name(html_path.stem + ".probe.html")
    probed.write_text(text.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    profile = html_path.parent / "chromium-profile"
    common = [*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "--virtual-time-budget=10000"]
    dom = subprocess.run([exe, *common, "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120)
    subprocess.run([exe, *common, f"--screenshot={screenshot_path}", html_path.as_uri()], capture_output=True,
                   timeout=120)
    body = re.search(r"<body([^>]*)>", dom.stdout)
    attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', body.group(1))) if body else {}
    errors = json.loads(attrs.get("errors", "[]").replace("&quot;", '"')) if attrs.get("errors") else []
    return {"dom_bytes": len(dom.stdout), "rc": dom.returncode, "probe": attrs.get("probe"), "decoded": int(attrs.get("decoded", -1)), "failed": int(attrs.get("failed", -1)),
            "errors": errors, "stderr": dom.stderr}
