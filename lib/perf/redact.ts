/**
 * Redaction of identifying values in snapshots. Identifying values (host
 * names, addresses, serials, user names, home paths, secret-looking
 * environment variables) are replaced by a *keyed* hash, `hmac-sha256:<16 hex>`:
 * two snapshots taken with the same key still compare equal where the real
 * values were equal, but the hash cannot be reversed by hashing guesses
 * without the key. The key comes from `RELIAB_REDACT_KEY`, else from a
 * per-user key file created once with mode 0600.
 *
 * @module
 */
import { createHmac } from "node:crypto";
import { join } from "node:path";
import { sha256Hex } from "./canonical.ts";
import { ConfigError } from "../errors.ts";
import type { Json, Property } from "./schema.ts";

/** Prefix of every redacted value. */
export const REDACTED_PREFIX = "hmac-sha256:";

/** A redaction key and its public identifier. */
export interface RedactKey {
  /** The key material (never written into a snapshot). */
  readonly key: string;
  /** First 8 hex of sha256(key): tells whether two snapshots used the same key. */
  readonly keyId: string;
  /** Where the key came from: the environment or the key file (its path). */
  readonly origin: string;
}

/** Options of `loadRedactKey`; the defaults read the real environment. */
export interface LoadRedactKeyOptions {
  /** Environment lookup (default `Deno.env.get`). */
  readonly env?: (name: string) => string | undefined;
}

const KEY_FILE_PATTERN = /^[0-9a-f]{64}$/;

/**
 * The redaction key: `RELIAB_REDACT_KEY` if set, else the key file
 * `($XDG_CONFIG_HOME or ~/.config)/reliab/redact.key`, created with 32 random
 * bytes (hex, mode 0600) on first use.
 *
 * @example
 * ```ts
 * const { keyId } = await loadRedactKey();
 * ```
 */
export async function loadRedactKey(options: LoadRedactKeyOptions = {}): Promise<RedactKey> {
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const fromEnv = env("RELIAB_REDACT_KEY");
  if (fromEnv !== undefined && fromEnv !== "") {
    return { key: fromEnv, keyId: keyIdOf(fromEnv), origin: "env:RELIAB_REDACT_KEY" };
  }
  const path = redactKeyPath(env);
  const key = await readOrCreateKeyFile(path);
  return { key, keyId: keyIdOf(key), origin: path };
}

/**
 * Path of the per-user key file.
 *
 * @example
 * ```ts
 * redactKeyPath((n) => ({ HOME: "/home/a" } as Record<string, string>)[n]); // "/home/a/.config/reliab/redact.key"
 * ```
 */
export function redactKeyPath(env: (name: string) => string | undefined): string {
  const xdg = env("XDG_CONFIG_HOME");
  const home = env("HOME");
  const base = xdg !== undefined && xdg.startsWith("/")
    ? xdg
    : home !== undefined && home !== ""
    ? join(home, ".config")
    : undefined;
  if (base === undefined) {
    throw new ConfigError(
      "Cannot find the redaction key: neither XDG_CONFIG_HOME nor HOME is set",
      {
        code: "redact_key_missing",
        hint: "set RELIAB_REDACT_KEY to a secret string, or pass --no-redact",
      },
    );
  }
  return join(base, "reliab", "redact.key");
}

async function readOrCreateKeyFile(path: string): Promise<string> {
  try {
    return validKey(path, await Deno.readTextFile(path));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw keyFileError(path, error);
  }
  const key = Array.from(crypto.getRandomValues(new Uint8Array(32)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  try {
    await Deno.mkdir(join(path, ".."), { recursive: true, mode: 0o700 });
    // createNew: two reliab processes racing both end up with the winner's key.
    await Deno.writeTextFile(path, `${key}\n`, { createNew: true, mode: 0o600 });
    return key;
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      return validKey(path, await Deno.readTextFile(path));
    }
    throw keyFileError(path, error);
  }
}

function validKey(path: string, text: string): string {
  const key = text.trim();
  if (!KEY_FILE_PATTERN.test(key)) {
    throw new ConfigError(`Cannot use redaction key file "${path}": expected 64 hex digits`, {
      code: "redact_key_invalid",
      hint: "delete the file to have a new key created, or set RELIAB_REDACT_KEY",
    });
  }
  return key;
}

function keyFileError(path: string, error: unknown): ConfigError {
  const detail = error instanceof Deno.errors.PermissionDenied
    ? "permission denied"
    : error instanceof Error
    ? error.message
    : String(error);
  return new ConfigError(`Cannot read or create redaction key file "${path}": ${detail}`, {
    code: "redact_key_unreadable",
    hint: "set RELIAB_REDACT_KEY to a secret string, or pass --no-redact",
    cause: error,
  });
}

/**
 * First 8 hex of sha256 of the key.
 *
 * @example
 * ```ts
 * keyIdOf("secret").length; // 8
 * ```
 */
export function keyIdOf(key: string): string {
  return sha256Hex(key).slice(0, 8);
}

/**
 * The keyed hash of a value: `hmac-sha256:` and the first 16 hex of
 * HMAC-SHA256(key, value).
 *
 * @example
 * ```ts
 * keyedHash("myhost", "k"); // "hmac-sha256:…" (same input and key, same output)
 * ```
 */
export function keyedHash(value: string, key: string): string {
  return REDACTED_PREFIX + createHmac("sha256", key).update(value).digest("hex").slice(0, 16);
}

/**
 * Whether an environment variable name looks like it holds a secret.
 *
 * @example
 * ```ts
 * isSecretName("GITHUB_TOKEN"); // true
 * isSecretName("OMP_NUM_THREADS"); // false
 * ```
 */
export function isSecretName(name: string): boolean {
  return /KEY|TOKEN|SECRET|PASS|AUTH|CREDENTIAL/i.test(name);
}

/**
 * Whether the whole value at a property path identifies the host or user (so
 * it is hashed as a whole, element by element for arrays).
 *
 * @example
 * ```ts
 * isIdentifyingPath("host.hostname"); // true
 * isIdentifyingPath("cpu.vendor"); // false
 * ```
 */
export function isIdentifyingPath(path: string): boolean {
  if (path.startsWith("host.")) {
    return /^host\.(hostname|domainname|fqdn|machine_id|boot_id|addresses|interfaces\..*\.(address|addresses|mac))/
      .test(path);
  }
  if (path.startsWith("dmi.")) return /(serial|uuid|asset_tag)/.test(path);
  if (path.startsWith("env.")) return isSecretName(path.slice(4));
  return path === "process.user" || path === "process.login";
}

/** What identifies this host and user, found by the caller. */
export interface RedactContext {
  /** Host names (short and fully qualified). */
  readonly hostnames: readonly string[];
  /** Home directories ($HOME and the passwd entry). */
  readonly homes: readonly string[];
  /** User names ($USER, $LOGNAME, the passwd entry). */
  readonly users: readonly string[];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

const MAC = String.raw`(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}(?![0-9A-Fa-f:])`;
const OCTET = String.raw`(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)`;
const IPV4 = String.raw`(?<![\d.])(?:${OCTET}\.){3}${OCTET}(?![\d.])`;
const H16 = "[0-9A-Fa-f]{1,4}";
const IPV6 = String
  .raw`(?<![\w:.])(?:(?:${H16}:){7}${H16}|(?:${H16}(?::${H16})*)?::(?:${H16}(?::${H16})*)?)(?![\w:])`;
const HOME_ANY = String.raw`/home/[^/\s:;,"'=]+`;

/** Addresses that identify nothing (unspecified, loopback) stay readable. */
function isHarmlessAddress(text: string): boolean {
  return text === "0.0.0.0" || text.startsWith("127.") || text === "::" || text === "::1";
}

/**
 * Replaces identifying values in snapshot properties by keyed hashes.
 *
 * @example
 * ```ts
 * const r = new Redactor("key", { hostnames: ["myhost"], homes: ["/home/me"], users: ["me"] });
 * r.scrub("/home/me/lib on myhost"); // "hmac-sha256:…/lib on hmac-sha256:…"
 * ```
 */
export class Redactor {
  readonly #key: string;
  readonly #all: RegExp;
  readonly #noHost: RegExp;
  readonly #noAddress: RegExp;

  constructor(key: string, context: RedactContext) {
    this.#key = key;
    const longestFirst = (items: readonly string[]) =>
      [...new Set(items.filter((s) => s !== ""))].sort((a, b) => b.length - a.length);
    // "/" as a home (system users) would redact every path.
    const homes = longestFirst(context.homes.filter((h) => h.length > 1 && h.startsWith("/")))
      .map((h) => `${escapeRegExp(h.replace(/\/+$/, ""))}(?![^/\\s:;,"'=])`);
    const users = longestFirst(context.users).map((u) =>
      `(?<=/)${escapeRegExp(u)}(?=$|[/\\s:;,"'=])`
    );
    const hosts = longestFirst(context.hostnames).map((h) =>
      `(?<![A-Za-z0-9-])${escapeRegExp(h)}(?![A-Za-z0-9-])`
    );
    // One alternation, one pass: inserted hashes are never matched again.
    const paths = [...homes, HOME_ANY, ...users];
    const addresses = [MAC, IPV4, IPV6];
    this.#all = new RegExp([...paths, ...addresses, ...hosts].join("|"), "g");
    this.#noHost = new RegExp([...paths, ...addresses].join("|"), "g");
    this.#noAddress = new RegExp([...paths, ...hosts].join("|"), "g");
  }

  /** The keyed hash of one value. */
  hash(value: string): string {
    return keyedHash(value, this.#key);
  }

  /**
   * Replaces every identifying part of a text (home paths, user path
   * segments, host names, MAC and IP addresses) by its keyed hash.
   * `hostnames: false` keeps host-name-like words (for sources, which are
   * paths reliab chose, such as /proc/sys/vm/…); `addresses: false` keeps
   * dotted numbers (for versions such as V8's 15.0.245.2, which look like IPv4).
   */
  scrub(
    text: string,
    options: { readonly hostnames?: boolean; readonly addresses?: boolean } = {},
  ): string {
    const regex = options.hostnames === false
      ? this.#noHost
      : options.addresses === false
      ? this.#noAddress
      : this.#all;
    return text.replace(regex, (match) => isHarmlessAddress(match) ? match : this.hash(match));
  }

  /** A property with its identifying parts replaced; `redacted: true` when anything changed. */
  redactProperty(path: string, property: Property): Property {
    const source = this.scrub(property.source, { hostnames: false });
    if (property.status === "unknown") {
      return { ...property, source, reason: this.scrub(property.reason) };
    }
    const value = isIdentifyingPath(path)
      ? this.#hashWhole(property.value)
      : this.#scrubJson(property.value, { addresses: !isVersionPath(path) });
    const changed = canonicalEqual(value, property.value) === false;
    return changed || property.redacted
      ? { status: "ok", value, source, redacted: true }
      : { status: "ok", value, source };
  }

  /** Every property redacted (see `redactProperty`). */
  redactProperties(properties: Readonly<Record<string, Property>>): Record<string, Property> {
    const out: Record<string, Property> = {};
    for (const [path, property] of Object.entries(properties)) {
      out[path] = this.redactProperty(path, property);
    }
    return out;
  }

  #hashWhole(value: Json): Json {
    if (value === null || typeof value === "boolean") return value;
    if (typeof value === "string") return value === "" ? value : this.hash(value);
    if (typeof value === "number") return this.hash(String(value));
    if (Array.isArray(value)) return value.map((v: Json) => this.#hashWhole(v));
    return this.hash(JSON.stringify(value));
  }

  #scrubJson(value: Json, options: { readonly addresses: boolean }): Json {
    if (typeof value === "string") return this.scrub(value, options);
    if (Array.isArray(value)) return value.map((v: Json) => this.#scrubJson(v, options));
    if (value !== null && typeof value === "object") {
      const out: Record<string, Json> = {};
      for (const [k, v] of Object.entries(value)) out[k] = this.#scrubJson(v, options);
      return out;
    }
    return value;
  }
}

/** Properties that hold versions, never addresses. */
function isVersionPath(path: string): boolean {
  return path.startsWith("toolchain.") || path === "kernel.release" || path === "kernel.version";
}

function canonicalEqual(a: Json, b: Json): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
