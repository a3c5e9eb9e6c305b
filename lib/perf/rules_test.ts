import { deepEqual, equal, ok as assert } from "node:assert/strict";
import {
  DEFAULT_RULE,
  globMatches,
  numberOf,
  ruleFor,
  RULES,
  selected,
  SEVERITIES,
} from "./rules.ts";

Deno.test("globs: * stays within a segment, ** crosses segments, dots are literal", () => {
  assert(globMatches("limits.*.soft", "limits.nofile.soft"));
  assert(!globMatches("limits.*.soft", "limits.a.b.soft"));
  assert(globMatches("frequency.**governor*", "frequency.governor"));
  assert(globMatches("frequency.**governor*", "frequency.cpu0.scaling_governor"));
  assert(!globMatches("cpu.model", "cpuXmodel"));
  assert(!globMatches("cpu.model", "cpu.model_name"));
  assert(globMatches("env.*_NUM_THREADS", "env.OMP_NUM_THREADS"));
  assert(!globMatches("env.LD_PRELOAD", "env.LD_PRELOAD2"));
  assert(globMatches("**tsc*{khz,freq}*", "cpu.tsc_khz"));
  assert(globMatches("**tsc*{khz,freq}*", "clock.tsc_freq_hz"));
  assert(!globMatches("**tsc*{khz,freq}*", "cpu.tsc_invariant"));
});

Deno.test("every path named in the design gets its intended rule kind", () => {
  const expected: Record<string, string> = {
    "cpu.vendor": "exact",
    "cpu.model_name": "exact",
    "cpu.flags": "set",
    "cpu.microcode": "exact",
    "cpu.count.online": "exact",
    "frequency.min_khz": "tolerance",
    "frequency.max_khz": "tolerance",
    "frequency.governor": "exact",
    "memory.total_kb": "tolerance",
    "memory.free_kb": "ignore",
    "kernel.release": "version",
    "kernel.cmdline": "set",
    "toolchain.gcc": "version",
    "toolchain.clang": "version",
    "toolchain.libc": "version",
    "process.affinity": "set",
    "process.steal_percent": "tolerance",
    "pressure.cpu.some_avg10": "ignore",
    "host.hostname": "ignore",
    "calibration.effective_clock_ghz": "tolerance",
    "calibration.timer_resolution_ns": "tolerance",
    "process.nice": "exact",
    "cpu.tsc_khz": "tolerance",
  };
  for (const [path, kind] of Object.entries(expected)) {
    equal(ruleFor(path).kind, kind, path);
  }
});

/** The fixed severity of the rule for `path` (undefined for computed ones). */
function severityOf(path: string): unknown {
  const rule = ruleFor(path);
  return "severity" in rule ? rule.severity : undefined;
}

Deno.test("specific rules come before general ones", () => {
  equal(severityOf("env.LD_PRELOAD"), "critical");
  equal(severityOf("env.OMP_NUM_THREADS"), "major");
  equal(severityOf("env.FOO"), "minor");
  equal(severityOf("sysctl.kernel.randomize_va_space"), "major");
  equal(severityOf("sysctl.vm.swappiness"), "minor");
  equal(severityOf("cpu.model_name"), "critical");
  equal(severityOf("cpu.something_new"), "major");
});

Deno.test("unmatched paths fall back to the default rule", () => {
  equal(ruleFor("totally.new.area"), DEFAULT_RULE);
  equal(DEFAULT_RULE.kind, "exact");
  equal(DEFAULT_RULE.severity, "minor");
});

Deno.test("rule table is well formed", () => {
  const patterns = RULES.map((r) => r.pattern);
  deepEqual(patterns.filter((p, i) => patterns.indexOf(p) !== i), [], "no duplicate patterns");
  for (const rule of RULES) {
    assert(rule.why.length > 0 && !rule.why.includes("\n"), rule.pattern);
    assert(rule.advice.length > 0 && !rule.advice.includes("\n"), rule.pattern);
    assert(rule.affects.length > 0, rule.pattern);
    if (rule.kind === "exact" && typeof rule.severity === "string") {
      assert((SEVERITIES as readonly string[]).includes(rule.severity));
    }
    // Each rule is reachable: it is the first match of its own pattern (with wildcards filled).
    const sample = rule.pattern.replaceAll("**", "x.y").replaceAll("*", "z")
      .replace(/\{([^,}]*)[^}]*\}/g, "$1");
    equal(ruleFor(sample), rule, `rule "${rule.pattern}" is shadowed by an earlier one`);
  }
});

Deno.test("numberOf and selected normalise sysfs-style values", () => {
  equal(numberOf("unlimited"), Infinity);
  equal(numberOf("max"), Infinity);
  equal(numberOf(" 42 "), 42);
  equal(numberOf("4k"), undefined);
  equal(numberOf(true), undefined);
  equal(selected("always [madvise] never"), "madvise");
  equal(selected("[mq-deadline] none"), "mq-deadline");
  equal(selected("madvise"), "madvise");
  equal(selected(3), 3);
});
