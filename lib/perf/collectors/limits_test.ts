import { deepEqual, equal } from "node:assert/strict";
import { parseLimits } from "./limits.ts";

const FIXTURE = `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max stack size            8388608              unlimited            bytes     
Max core file size        0                    unlimited            bytes     
Max open files            1024                 524288               files     
Max locked memory         8388608              8388608              bytes     
Max nice priority         0                    0                    
Max realtime timeout      unlimited            unlimited            us        
`;

Deno.test("parseLimits reads soft and hard limits with short names", () => {
  const limits = parseLimits(FIXTURE);
  deepEqual(limits.nofile, { soft: 1024, hard: 524288, unit: "files" });
  deepEqual(limits.stack, { soft: 8388608, hard: "unlimited", unit: "bytes" });
  deepEqual(limits.cpu, { soft: "unlimited", hard: "unlimited", unit: "seconds" });
  deepEqual(limits.nice, { soft: 0, hard: 0, unit: "" });
  equal(limits.core?.soft, 0);
  deepEqual(Object.keys(limits).sort(), [
    "core",
    "cpu",
    "memlock",
    "nice",
    "nofile",
    "rttime",
    "stack",
  ]);
});

Deno.test("parseLimits ignores the header and unknown rows", () => {
  deepEqual(parseLimits("Limit Soft Limit Hard Limit Units\nMax widgets   1   2   things\n"), {});
});
