import { deepEqual, equal, match, notEqual, ok as assert } from "node:assert/strict";
import {
  isIdentifyingPath,
  isSecretName,
  keyedHash,
  keyIdOf,
  loadRedactKey,
  Redactor,
} from "./redact.ts";
import { known, unknown } from "./schema.ts";
import { ConfigError } from "../errors.ts";

const CONTEXT = {
  hostnames: ["buildhost7"],
  homes: ["/home/alice"],
  users: ["alice"],
};

Deno.test("keyedHash: same value and key give the same hash, other keys or values differ", () => {
  const a = keyedHash("buildhost7", "key-one");
  equal(a, keyedHash("buildhost7", "key-one"));
  match(a, /^hmac-sha256:[0-9a-f]{16}$/);
  notEqual(a, keyedHash("buildhost7", "key-two"));
  notEqual(a, keyedHash("buildhost8", "key-one"));
});

Deno.test("Redactor.scrub replaces home paths, host names, addresses and keeps the rest", () => {
  const r = new Redactor("k", CONTEXT);
  const home = r.hash("/home/alice");
  equal(r.scrub("/home/alice/lib:/usr/lib"), `${home}/lib:/usr/lib`);
  equal(r.scrub("/home/bob/x"), `${r.hash("/home/bob")}/x`);
  equal(r.scrub("built on buildhost7."), `built on ${r.hash("buildhost7")}.`);
  // Host name inside a longer word is not the host name.
  equal(r.scrub("buildhost77 xbuildhost7"), "buildhost77 xbuildhost7");
  equal(r.scrub("ip=10.1.2.3 --addr 0.0.0.0:80"), `ip=${r.hash("10.1.2.3")} --addr 0.0.0.0:80`);
  equal(r.scrub("mac 52:54:00:12:34:56"), `mac ${r.hash("52:54:00:12:34:56")}`);
  equal(r.scrub("fe80::5054:ff:fe12:3456 ::1"), `${r.hash("fe80::5054:ff:fe12:3456")} ::1`);
  equal(r.scrub("/srv/alice/data"), `/srv/${r.hash("alice")}/data`);
  for (const keep of ["std::string", "12:34:56", "gcc 12.2.0", "kvm-clock", "1.2.3.4.5"]) {
    equal(r.scrub(keep), keep);
  }
});

Deno.test("Redactor.redactProperty hashes identifying values whole and marks changes", () => {
  const r = new Redactor("k", CONTEXT);
  const host = r.redactProperty("host.hostname", known("buildhost7", "syscall:gethostname"));
  deepEqual(host, {
    status: "ok",
    value: r.hash("buildhost7"),
    source: "syscall:gethostname",
    redacted: true,
  });
  const addrs = r.redactProperty("host.addresses", known(["10.0.0.1", "10.0.0.2"], "x"));
  deepEqual(addrs.status === "ok" && addrs.value, [r.hash("10.0.0.1"), r.hash("10.0.0.2")]);
  const secret = r.redactProperty("env.AWS_SECRET_ACCESS_KEY", known("abc", "env"));
  deepEqual(secret.status === "ok" && secret.value, r.hash("abc"));
  const plain = r.redactProperty("cpu.vendor", known("AuthenticAMD", "cpuid:0x0.0"));
  deepEqual(plain, known("AuthenticAMD", "cpuid:0x0.0"));
  const nested = r.redactProperty("process.cwd", known({ dir: "/home/alice/p" }, "x"));
  deepEqual(nested, {
    status: "ok",
    value: { dir: `${r.hash("/home/alice")}/p` },
    source: "x",
    redacted: true,
  });
  const why = r.redactProperty("x", unknown("/home/alice/f", "cannot read /home/alice/f"));
  deepEqual(why, unknown(`${r.hash("/home/alice")}/f`, `cannot read ${r.hash("/home/alice")}/f`));
});

Deno.test("identifying paths and secret names", () => {
  for (const p of ["host.hostname", "host.machine_id", "dmi.product_serial", "dmi.product_uuid"]) {
    assert(isIdentifyingPath(p), p);
  }
  for (const p of ["dmi.sys_vendor", "cpu.vendor", "env.OMP_NUM_THREADS", "host.kernel"]) {
    assert(!isIdentifyingPath(p), p);
  }
  for (const n of ["API_KEY", "GH_TOKEN", "DB_PASSWORD", "MY_SECRET", "AUTH_X", "CREDENTIALS"]) {
    assert(isSecretName(n), n);
  }
  assert(!isSecretName("MALLOC_ARENA_MAX"));
});

Deno.test("loadRedactKey: environment key wins; key file is created once with mode 0600", async () => {
  const fromEnv = await loadRedactKey({
    env: (n) => n === "RELIAB_REDACT_KEY" ? "s3cret" : undefined,
  });
  deepEqual(fromEnv, { key: "s3cret", keyId: keyIdOf("s3cret"), origin: "env:RELIAB_REDACT_KEY" });
  match(fromEnv.keyId, /^[0-9a-f]{8}$/);

  const dir = await Deno.makeTempDir({ prefix: "reliab_redact_" });
  try {
    const env = (n: string) => n === "XDG_CONFIG_HOME" ? dir : undefined;
    const first = await loadRedactKey({ env });
    equal(first.origin, `${dir}/reliab/redact.key`);
    match(first.key, /^[0-9a-f]{64}$/);
    equal((await Deno.stat(first.origin)).mode! & 0o777, 0o600);
    const second = await loadRedactKey({ env });
    deepEqual(second, first);

    await Deno.writeTextFile(first.origin, "not a key\n");
    let error: unknown;
    await loadRedactKey({ env }).catch((e) => error = e);
    assert(error instanceof ConfigError);
    match(error.message, /expected 64 hex digits/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadRedactKey: no HOME and no XDG_CONFIG_HOME is a ConfigError with a hint", async () => {
  let error: unknown;
  await loadRedactKey({ env: () => undefined }).catch((e) => error = e);
  assert(error instanceof ConfigError);
  match(error.hint, /RELIAB_REDACT_KEY/);
});
