/* Use after free controlled by an environment variable: in "fast" mode the
 * buffer is released early, then written and freed again. glibc aborts on
 * the double free (the symptom); ASan on replay reports the write after free
 * (the root cause), though triage runs without the variable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  const char *mode = getenv("PECKER_CORPUS_MODE");
  char *buffer = malloc(32);
  strcpy(buffer, "hello");
  if (mode != NULL && strcmp(mode, "fast") == 0) free(buffer);
  buffer[0] = 'H'; // BUG
  printf("mode %s\n", mode == NULL ? "none" : mode);
  free(buffer);
  return 0;
}
