/* A programmer assertion that only an assertion build checks: release
 * builds compile it out with -DNDEBUG; the input comes from stdin. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  char line[64];
  if (fgets(line, sizeof line, stdin) == NULL) return 2;
  int percent = atoi(line);
  assert(percent <= 100); // BUG
  printf("percent %d\n", percent);
  return 0;
}
