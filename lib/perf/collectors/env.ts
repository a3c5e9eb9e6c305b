/**
 * Environment variables that change how programs run (thread counts,
 * allocators, dynamic linking, locale, compiler flags). Only allow-listed
 * names are recorded: the rest of the environment may hold anything.
 *
 * @module
 */
import { known } from "../schema.ts";
import type { Props } from "./_io.ts";

/** Exact names recorded. */
export const ENV_NAMES: ReadonlySet<string> = new Set([
  "GOMAXPROCS",
  "GOGC",
  "GOMEMLIMIT",
  "GODEBUG",
  "GLIBC_TUNABLES",
  "LD_PRELOAD",
  "LD_LIBRARY_PATH",
  "LD_BIND_NOW",
  "CUDA_VISIBLE_DEVICES",
  "HIP_VISIBLE_DEVICES",
  "TZ",
  "LANG",
  "LANGUAGE",
  "PYTHONHASHSEED",
  "PYTHONOPTIMIZE",
  "PYTHONMALLOC",
  "PYTHONDONTWRITEBYTECODE",
  "JAVA_TOOL_OPTIONS",
  "_JAVA_OPTIONS",
  "JDK_JAVA_OPTIONS",
  "NODE_OPTIONS",
  "UV_THREADPOOL_SIZE",
  "DENO_V8_FLAGS",
  "RUSTFLAGS",
  "CARGO_BUILD_RUSTFLAGS",
  "CFLAGS",
  "CXXFLAGS",
  "CPPFLAGS",
  "LDFLAGS",
  "FFLAGS",
  "CC",
  "CXX",
  "MALLOC_CONF",
  "JE_MALLOC_CONF",
  "RAYON_NUM_THREADS",
  "TBB_NUM_THREADS",
]);

/** Name prefixes recorded. */
export const ENV_PREFIXES: readonly string[] = [
  "OMP_",
  "GOMP_",
  "KMP_",
  "MKL_",
  "OPENBLAS_",
  "BLIS_",
  "VECLIB_",
  "NUMEXPR_",
  "MALLOC_",
  "TCMALLOC_",
  "LC_",
];

/**
 * Whether an environment variable is recorded.
 *
 * @example
 * ```ts
 * isAllowedEnv("OMP_NUM_THREADS"); // true
 * isAllowedEnv("AWS_SECRET_ACCESS_KEY"); // false
 * ```
 */
export function isAllowedEnv(name: string): boolean {
  return ENV_NAMES.has(name) || ENV_PREFIXES.some((p) => name.startsWith(p)) ||
    name.endsWith("_NUM_THREADS");
}

/**
 * The allow-listed variables of an environment (`env.<NAME>`).
 *
 * @example
 * ```ts
 * envProperties({ OMP_NUM_THREADS: "4", HOME: "/root" }); // { "env.OMP_NUM_THREADS": known("4", "env:OMP_NUM_THREADS") }
 * ```
 */
export function envProperties(env: Readonly<Record<string, string>>): Props {
  const props: Props = {};
  for (const name of Object.keys(env).filter(isAllowedEnv).sort()) {
    props[`env.${name}`] = known(env[name]!, `env:${name}`);
  }
  return props;
}

/**
 * The allow-listed variables of this process.
 *
 * @example
 * ```ts
 * const props = collectEnv();
 * ```
 */
export function collectEnv(): Props {
  return envProperties(Deno.env.toObject());
}
