/* Fuzz target: checkpoint readers. The input is parsed as a safetensors file (header JSON,
 * dtypes, shapes, offsets) and as config.json text. */
#include <stdint.h>
#include <string.h>

#include "files.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    struct gptoss_st_set set;
    memset(&set, 0, sizeof(set));
    if (gptoss_st_parse(data, size, 0, "fuzz", &set) == gptoss_status_success) {
        for (size_t i = 0; i < set.num_tensors; i++) {
            const struct gptoss_st_tensor* t = &set.tensors[i];
            if (t->offset > size || t->size > size - t->offset) __builtin_trap();
            volatile uint8_t sink = t->size ? data[t->offset + t->size - 1] : 0;
            (void) sink;
        }
    }
    gptoss_st_close(&set);
    struct gptoss_model_config c;
    uint32_t v, k;
    gptoss_convert_parse_config((const char*) data, size, &c, &v, &k);
    return 0;
}
