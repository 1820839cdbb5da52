/* The malloc API contract through the standard (unprefixed) names, as a
 * program using LD_PRELOAD or the static library sees it. */
#include "api_common.h"

int main(void) {
    gh_start("api_unprefixed");
    struct api std_api = {
        "unprefixed", malloc, free, calloc, realloc, reallocarray, posix_memalign,
        aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size,
    };
    run_api(&std_api);
    /* A second round on a heap that has already seen everything above. */
    run_api(&std_api);
    printf("api_unprefixed: ok (%s)\n", gh_mode());
    return 0;
}
