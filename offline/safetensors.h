/* Internal: reading safetensors checkpoints (read-only mappings; every offset checked). */
#ifndef GPTOSS_ENGINE_SAFETENSORS_H
#define GPTOSS_ENGINE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include <gptoss/kernels.h>

#define GPTOSS_ST_MAX_RANK 8
#define GPTOSS_ST_MAX_HEADER (100u << 20)   /* the safetensors spec limit is 100 MB */

struct gptoss_st_tensor {
    char* name;
    char dtype[16];            /* "BF16", "U8", ... */
    uint32_t element_size;     /* bytes */
    uint32_t rank;
    uint64_t shape[GPTOSS_ST_MAX_RANK];
    uint64_t offset;           /* absolute offset in its file */
    uint64_t size;             /* bytes = product(shape) * element_size (checked) */
    uint32_t file;             /* index into gptoss_st_set.files */
};

struct gptoss_st_file {
    char* path;
    const uint8_t* map;
    uint64_t size;
};

struct gptoss_st_set {
    struct gptoss_st_file* files;
    size_t num_files;
    struct gptoss_st_tensor* tensors;
    size_t num_tensors;
};

/* Parses the header of a safetensors file held in data[0..size) (only the header is read;
 * offsets are checked against `size`). Appends tensors to set (file index `file`).
 * invalid_argument with a message naming the tensor on bad content. */
enum gptoss_status gptoss_st_parse(const uint8_t* data, uint64_t size, uint32_t file, const char* what,
                                   struct gptoss_st_set* set);
/* Maps every *.safetensors file of `dir` (sorted by name) and parses them; tensor names
 * must be unique across files. */
enum gptoss_status gptoss_st_open_dir(const char* dir, struct gptoss_st_set* set);
const struct gptoss_st_tensor* gptoss_st_find(const struct gptoss_st_set* set, const char* name);
static inline const uint8_t* gptoss_st_data(const struct gptoss_st_set* set, const struct gptoss_st_tensor* t) {
    return set->files[t->file].map + t->offset;
}
/* Unmaps and frees (files with map == NULL are not unmapped: caller-owned buffers). */
void gptoss_st_close(struct gptoss_st_set* set);

#endif
