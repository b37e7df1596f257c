/* tests/c/test_main.c - C-level tests of mgbn (run by CI, also under ASan/UBSan). */
#include <stdio.h>
#include "mg.h"
int main(void) { return mg_init() == MG_OK ? 0 : 1; }
