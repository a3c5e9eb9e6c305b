import { equal, ok as assert } from "node:assert/strict";
import { diffSnapshots } from "./diff.ts";
import { escapeHtml, renderDiffHtml } from "./render_html.ts";
import { makeSnapshot } from "./_make_snapshot.ts";
import { unknown } from "./schema.ts";

const EVIL = `<script>alert("x")</script><img src=x onerror='y'>&`;

function page() {
  const a = makeSnapshot({
    "env.LD_PRELOAD": EVIL,
    "frequency.governor": "performance",
    "cpu.vendor": "AuthenticAMD",
    [`env.X${EVIL}`]: "1",
    "boost.enabled": unknown(EVIL, `needs <b>root</b>`),
  }, { created: EVIL });
  const b = makeSnapshot({
    "frequency.governor": "powersave",
    "cpu.vendor": "AuthenticAMD",
    "boost.enabled": true,
  });
  return { html: renderDiffHtml(a, b, diffSnapshots(a, b)), a, b };
}

Deno.test("escapeHtml escapes the five special characters", () => {
  equal(
    escapeHtml(`<a href="x" title='y'>&</a>`),
    "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;",
  );
});

Deno.test("html: values from snapshots cannot inject markup", () => {
  const { html } = page();
  assert(!html.includes("<script"), "no script element");
  assert(!html.includes("<img"), "no injected element");
  assert(!html.includes("<b>root"), "reasons escaped");
  assert(html.includes("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
  assert(html.includes("needs &lt;b&gt;root&lt;/b&gt;"));
});

Deno.test("html: self-contained page with summary, differences and both hosts", () => {
  const { html } = page();
  assert(html.startsWith("<!DOCTYPE html>"));
  assert(!/(src|href)=["']?(https?:)?\/\//.test(html), "no external assets");
  assert(html.includes("<style>"));
  // Summary counts: critical 1 (LD_PRELOAD removed), major 1 (governor), minor 1 (env.X…), info 1.
  for (const s of ["critical", "major", "minor", "info"]) {
    assert(html.includes(`<div class="count ${s}"><strong>1</strong>${s}</div>`), s);
  }
  assert(html.includes('<span class="badge major">major</span>'));
  // The side-by-side table lists every property and highlights the differing ones.
  const governorRow = html.split("\n").find((l) =>
    l.includes("<code>frequency.governor</code>") && l.includes("<td><span")
  );
  assert(governorRow?.startsWith('<tr class="diff-major">'), governorRow);
  const vendorRow = html.split("\n").find((l) =>
    l.includes("<code>cpu.vendor</code>") && l.includes("<td><span")
  );
  assert(vendorRow?.startsWith("<tr><td>"), "equal rows are not highlighted");
  assert(html.includes("unknown (needs &lt;b&gt;root&lt;/b&gt;)"));
});

Deno.test("html: no differences says so", () => {
  const a = makeSnapshot({ "cpu.vendor": "AuthenticAMD" });
  const html = renderDiffHtml(a, a, []);
  assert(html.includes("No differences"));
  assert(html.includes('<div class="count critical zero"><strong>0</strong>critical</div>'));
});
