"""The evidence bundle of architecture.md: summary.json, report.html, lifecycle.svg, junit.xml,
traces/ and MANIFEST.sha256."""
