/* Model file reader ("GPT-OSS v1.0", MODEL_FORMAT.md): header validation, layout, mapping,
 * upload to the backend. Every size, count and offset is checked in 64-bit arithmetic with
 * overflow checks before use; a bad file gives io_error or invalid_argument, never a crash. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gptoss/error.h>

#include "model.h"

/* ---- file I/O ----------------------------------------------------------------------- */

static enum gptoss_status read_exact(int fd, void* buf, size_t size, uint64_t offset, const char* path) {
    uint8_t* p = buf;
    while (size != 0) {
        ssize_t n = pread(fd, p, size > (1u << 30) ? (1u << 30) : size, (off_t) offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            return gptoss_fail(gptoss_status_io_error, "%s: read of %zu bytes at offset %llu failed: %s", path, size,
                               (unsigned long long) offset, strerror(errno));
        }
        if (n == 0) {
            return gptoss_fail(gptoss_status_io_error, "%s: file is truncated (end of file at offset %llu)", path,
                               (unsigned long long) offset);
        }
        p += n;
        size -= (size_t) n;
        offset += (uint64_t) n;
    }
    return gptoss_status_success;
}

/* Opens `path`, checks it is a regular file, reads and parses the header. */
static enum gptoss_status open_and_parse(const char* path, int* fd_out, uint64_t* size_out,
                                         struct gptoss_file_info* info) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return gptoss_fail(gptoss_status_io_error, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    enum gptoss_status st;
    if (fstat(fd, &sb) != 0) {
        st = gptoss_fail(gptoss_status_io_error, "%s: fstat failed: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        const char* kind = S_ISDIR(sb.st_mode) ? "a directory" : S_ISCHR(sb.st_mode) ? "a character device"
                           : S_ISBLK(sb.st_mode) ? "a block device" : S_ISFIFO(sb.st_mode) ? "a pipe"
                           : S_ISSOCK(sb.st_mode) ? "a socket" : "a special file";
        st = gptoss_fail(gptoss_status_io_error, "%s is %s, not a model file", path, kind);
        goto fail;
    }
    const uint64_t size = (uint64_t) sb.st_size;
    if (size < GPTOSS_FILE_HEADER_SIZE) {
        st = gptoss_fail(gptoss_status_io_error, "%s: file is truncated: %llu bytes, the header alone needs %u", path,
                         (unsigned long long) size, GPTOSS_FILE_HEADER_SIZE);
        goto fail;
    }
    uint8_t header[GPTOSS_FILE_HEADER_SIZE];
    if ((st = read_exact(fd, header, sizeof(header), 0, path)) != gptoss_status_success) goto fail;
    if ((st = gptoss_file_parse_header(header, info)) != gptoss_status_success) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
        gptoss_fail(st, "%s: %s", path, msg);
        goto fail;
    }
    *fd_out = fd;
    *size_out = size;
    return gptoss_status_success;
fail:
    close(fd);
    return st;
}

enum gptoss_status gptoss_file_read_header(const char* path, uint64_t* size_out, struct gptoss_file_info* info_out) {
    int fd;
    const enum gptoss_status st = open_and_parse(path, &fd, size_out, info_out);
    if (st == gptoss_status_success) close(fd);
    return st;
}

/* ---- tokenizer from file ------------------------------------------------------------ */

enum gptoss_status gptoss_tokenizer_create_from_file(const char* path, gptoss_tokenizer_t* tokenizer_out) {
    gptoss_clear_error();
    if (path == NULL) return gptoss_fail(gptoss_status_invalid_argument, "path is NULL");
    if (tokenizer_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "tokenizer_out is NULL");
    int fd;
    uint64_t size;
    struct gptoss_file_info info;
    enum gptoss_status st = open_and_parse(path, &fd, &size, &info);
    if (st != gptoss_status_success) return st;
    uint8_t* section = NULL;
    if (size < info.tokenizer_end) {
        st = gptoss_fail(gptoss_status_io_error, "%s: file is truncated: %llu bytes, the tokenizer section ends at %llu",
                         path, (unsigned long long) size, (unsigned long long) info.tokenizer_end);
        goto done;
    }
    const size_t section_size = (size_t) (info.tokenizer_end - GPTOSS_FILE_HEADER_SIZE);
    section = malloc(section_size);
    if (section == NULL) {
        st = gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate %zu bytes for the tokenizer", section_size);
        goto done;
    }
    if ((st = read_exact(fd, section, section_size, GPTOSS_FILE_HEADER_SIZE, path)) != gptoss_status_success) goto done;
    st = gptoss_tokenizer_create_from_section(&info, section, section_size, tokenizer_out);
    if (st != gptoss_status_success) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
        gptoss_fail(st, "%s: %s", path, msg);
    }
done:
    free(section);
    close(fd);
    return st;
}

/* ---- model -------------------------------------------------------------------------- */

/* Frees everything; the statuses of the frees are dropped, so they keep the thread's
 * message (this runs after failures too). */
static void model_free(struct gptoss_model* m) {
    if (m == NULL) return;
    gptoss_error_keep_begin();
    gptoss_tokenizer_release(m->tokenizer);
    if (m->backend != NULL && m->weights != NULL &&
        (m->weights_owned || gptoss_backend_get_kind(m->backend) != gptoss_backend_kind_cpu)) {
        gptoss_backend_free(m->backend, (void*) m->weights);
    }
    if (m->mapping != NULL) munmap(m->mapping, m->mapping_size);
    if (m->fd >= 0) close(m->fd);
    free(m->layers);
    free(m);
    gptoss_error_keep_end();
}

/* Fills m->layers (allocated), embedding/final_norm/unembedding, expert and weights_size
 * from a computed layout; insufficient_memory if the layer table cannot be allocated. */
static enum gptoss_status set_layout(struct gptoss_model* m, const struct gptoss_file_info* info) {
    m->layers = calloc(info->config.num_blocks, sizeof(struct gptoss_layer_offsets));
    if (m->layers == NULL) {
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate %u layer descriptors",
                           info->config.num_blocks);
    }
    for (uint32_t n = 0; n < info->config.num_blocks; n++) {
        const size_t d = (size_t) (n * info->per_block); /* cannot overflow: checked by the layout */
        struct gptoss_layer_offsets l = info->layer0;
        l.attn_norm += d; l.qkv_weight += d; l.qkv_bias += d; l.sinks += d; l.out_weight += d;
        l.out_bias += d; l.mlp_norm += d; l.gate_weight += d; l.gate_bias += d;
        l.moe = (size_t) (info->shared_size + (uint64_t) n * info->moe_size);
        m->layers[n] = l;
    }
    m->embedding = (size_t) info->embedding;
    m->final_norm = (size_t) info->final_norm;
    m->unembedding = (size_t) info->unembedding;
    m->expert = info->expert;
    m->weights_size = (size_t) info->weights_size;
    return gptoss_status_success;
}

static enum gptoss_status upload_weights(struct gptoss_model* m, const uint8_t* src, const char* path) {
    void* dst = NULL;
    enum gptoss_status st = gptoss_backend_alloc(m->backend, m->weights_size, &dst);
    if (st != gptoss_status_success) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
        return gptoss_fail(st, "%s: cannot allocate %zu bytes of weights on %s: %s", path, m->weights_size,
                           gptoss_backend_get_name(m->backend), msg);
    }
    m->weights = dst;
    m->weights_owned = 1;
    const size_t chunk = (size_t) 64 << 20;
    const int tty = isatty(STDERR_FILENO);
    int last_pct = -1;
    for (size_t done = 0; done < m->weights_size;) {
        const size_t n = m->weights_size - done < chunk ? m->weights_size - done : chunk;
        st = gptoss_backend_copy(m->backend, (uint8_t*) dst + done, src + done, n, gptoss_copy_host_to_backend);
        if (st != gptoss_status_success) {
            char msg[400];
            snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
            return gptoss_fail(st, "%s: upload of weights failed at byte %zu: %s", path, done, msg);
        }
        done += n;
        const int pct = (int) ((double) done * 100.0 / (double) m->weights_size);
        if (pct != last_pct && (tty || pct == 100 || pct / 10 != last_pct / 10)) {
            const int bar = pct * 30 / 100;
            fprintf(stderr, "%sloading weights [%.*s%*s] %3d%% (%.2f / %.2f GiB)%s", tty ? "\r" : "", bar,
                    "==============================", 30 - bar, "", pct, (double) done / (1u << 30),
                    (double) m->weights_size / (1u << 30), tty ? (pct == 100 ? "\n" : "") : "\n");
            fflush(stderr);
            last_pct = pct;
        }
    }
    st = gptoss_backend_synchronize(m->backend);
    if (st != gptoss_status_success) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
        return gptoss_fail(st, "%s: upload of weights failed: %s", path, msg);
    }
    return gptoss_status_success;
}

enum gptoss_status gptoss_model_create_from_file(const char* path, gptoss_backend_t backend,
                                                 gptoss_model_t* model_out) {
    return gptoss_model_create_from_file_ex(path, backend, 0, model_out);
}

enum gptoss_status gptoss_model_create_from_file_ex(const char* path, gptoss_backend_t backend, uint32_t flags,
                                                    gptoss_model_t* model_out) {
    gptoss_clear_error();
    if ((flags & ~(uint32_t) GPTOSS_MODEL_NO_MMAP) != 0) {
        return gptoss_fail(gptoss_status_invalid_argument, "unknown model flags 0x%x", flags);
    }
    if (path == NULL) return gptoss_fail(gptoss_status_invalid_argument, "path is NULL");
    if (backend == NULL) return gptoss_fail(gptoss_status_invalid_argument, "backend is NULL");
    if (model_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "model_out is NULL");
    const enum gptoss_backend_kind kind = gptoss_backend_get_kind(backend);
    if (kind != gptoss_backend_kind_cpu && kind != gptoss_backend_kind_cuda) {
        return gptoss_fail(gptoss_status_invalid_argument, "backend kind %d is unknown", (int) kind);
    }

    struct gptoss_model* m = calloc(1, sizeof(*m));
    if (m == NULL) return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the model");
    m->fd = -1;
    m->backend = backend;
    atomic_init(&m->ref_count, 1);

    struct gptoss_file_info info;
    uint64_t size;
    enum gptoss_status st = open_and_parse(path, &m->fd, &size, &info);
    if (st != gptoss_status_success) goto fail;
    if (size < info.file_size) {
        st = gptoss_fail(gptoss_status_io_error,
                         "%s: file is truncated: %llu bytes, the layout (L=%u E=%u H=%u I=%u, weights from %llu) needs "
                         "%llu",
                         path, (unsigned long long) size, info.config.num_blocks, info.config.num_experts,
                         info.config.embedding_dim, info.config.mlp_dim, (unsigned long long) info.weights_offset,
                         (unsigned long long) info.file_size);
        goto fail;
    }
    m->config = info.config;
    m->vocabulary_size = info.num_text_tokens + info.num_special_tokens;

    m->mapping_size = (size_t) size;
    void* map = mmap(NULL, m->mapping_size, PROT_READ, MAP_PRIVATE, m->fd, 0);
    if (map == MAP_FAILED) {
        st = gptoss_fail(gptoss_status_io_error, "%s: mmap of %zu bytes failed: %s", path, m->mapping_size,
                         strerror(errno));
        goto fail;
    }
    m->mapping = map;
    const uint8_t* base = map;

    st = gptoss_tokenizer_create_from_section(&info, base + GPTOSS_FILE_HEADER_SIZE,
                                              (size_t) (info.tokenizer_end - GPTOSS_FILE_HEADER_SIZE), &m->tokenizer);
    if (st != gptoss_status_success) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
        gptoss_fail(st, "%s: %s", path, msg);
        goto fail;
    }

    if ((st = set_layout(m, &info)) != gptoss_status_success) goto fail;

    if (kind == gptoss_backend_kind_cpu && !(flags & GPTOSS_MODEL_NO_MMAP)) {
        m->weights = base + info.weights_offset;
    } else {
        st = upload_weights(m, base + info.weights_offset, path);
        if (st != gptoss_status_success) goto fail;
        munmap(m->mapping, m->mapping_size);
        m->mapping = NULL;
        m->mapping_size = 0;
        close(m->fd);
        m->fd = -1;
    }
    *model_out = m;
    return gptoss_status_success;
fail:
    model_free(m);
    return st;
}

enum gptoss_status gptoss_model_create_with_layout(const struct gptoss_file_info* info, const uint8_t* section,
                                                   size_t section_size, gptoss_backend_t backend, const char* what,
                                                   gptoss_model_t* model_out, uint8_t** weights_out) {
    if (section_size != info->tokenizer_end - GPTOSS_FILE_HEADER_SIZE) {
        return gptoss_fail(gptoss_status_invalid_state, "%s: tokenizer section is %zu bytes, the layout says %llu", what,
                           section_size, (unsigned long long) (info->tokenizer_end - GPTOSS_FILE_HEADER_SIZE));
    }
    struct gptoss_model* m = calloc(1, sizeof(*m));
    if (m == NULL) return gptoss_fail(gptoss_status_insufficient_memory, "%s: cannot allocate the model", what);
    m->fd = -1;
    m->backend = backend;
    atomic_init(&m->ref_count, 1);
    m->config = info->config;
    m->vocabulary_size = info->num_text_tokens + info->num_special_tokens;
    enum gptoss_status st = gptoss_tokenizer_create_from_section(info, section, section_size, &m->tokenizer);
    if (st == gptoss_status_success) st = set_layout(m, info);
    if (st != gptoss_status_success) goto fail;
    void* weights = NULL;
    st = gptoss_backend_alloc(backend, m->weights_size, &weights);
    if (st != gptoss_status_success) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
        gptoss_fail(st, "%s: cannot allocate %zu bytes of weights on %s: %s", what, m->weights_size,
                    gptoss_backend_get_name(backend), msg);
        goto fail;
    }
    m->weights = weights;
    m->weights_owned = 1;
    *model_out = m;
    *weights_out = weights;
    return gptoss_status_success;
fail:
    model_free(m);
    return st;
}

enum gptoss_status gptoss_model_get_tokenizer(gptoss_model_t model, gptoss_tokenizer_t* tokenizer_out) {
    gptoss_clear_error();
    if (model == NULL) return gptoss_fail(gptoss_status_invalid_argument, "model is NULL");
    if (tokenizer_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "tokenizer_out is NULL");
    enum gptoss_status st = gptoss_tokenizer_retain(model->tokenizer);
    if (st != gptoss_status_success) return st;
    *tokenizer_out = model->tokenizer;
    return gptoss_status_success;
}

enum gptoss_status gptoss_model_get_max_context_length(gptoss_model_t model, size_t* max_context_length_out) {
    gptoss_clear_error();
    if (model == NULL) return gptoss_fail(gptoss_status_invalid_argument, "model is NULL");
    if (max_context_length_out == NULL) {
        return gptoss_fail(gptoss_status_invalid_argument, "max_context_length_out is NULL");
    }
    *max_context_length_out = model->config.context_length;
    return gptoss_status_success;
}

enum gptoss_status gptoss_model_get_decode_bytes(gptoss_model_t model, size_t num_kv_tokens, uint64_t* bytes_out) {
    gptoss_clear_error();
    if (model == NULL) return gptoss_fail(gptoss_status_invalid_argument, "model is NULL");
    if (bytes_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "bytes_out is NULL");
    const struct gptoss_model_config* c = &model->config;
    /* sizes were checked to fit 64 bits when the model was made; doubles keep the
     * arithmetic free of overflow for any num_kv_tokens */
    const double H = c->embedding_dim, D = c->head_dim, Hq = c->num_heads, Hkv = c->num_kv_heads;
    const double E = c->num_experts, K = c->num_active_experts, I = c->mlp_dim, V = model->vocabulary_size;
    const double bf16 = 2, qkv = D * (Hq + 2 * Hkv);
    const double mxfp4 = 17.0 / 32.0; /* 16 bytes of nibbles + 1 scale byte per 32 weights */
    const double expert = 2 * I * H * mxfp4 + 2 * I * bf16 + H * I * mxfp4 + H * bf16;
    const double layer = 2 * H * bf16 + qkv * H * bf16 + qkv * bf16 + Hq * bf16 + H * Hq * D * bf16 + H * bf16 +
                         E * H * bf16 + E * bf16 + K * expert;
    const double kv_row = Hkv * 2 * D * sizeof(float); /* K and V of one position */
    double bytes = H * bf16 + H * bf16 + V * H * bf16;  /* embedding row, final norm, unembedding */
    for (uint32_t l = 0; l < c->num_blocks; l++) {
        double positions = (double) num_kv_tokens + 1;
        if (l % 2 == 0 && positions > c->attention_window) positions = c->attention_window; /* sliding layers */
        bytes += layer + positions * kv_row;
    }
    *bytes_out = bytes >= 1.8e19 ? UINT64_MAX : (uint64_t) bytes;
    return gptoss_status_success;
}

enum gptoss_status gptoss_model_retain(gptoss_model_t model) {
    gptoss_clear_error();
    if (model == NULL) return gptoss_fail(gptoss_status_invalid_argument, "model is NULL");
    atomic_fetch_add_explicit(&model->ref_count, 1, memory_order_relaxed);
    return gptoss_status_success;
}

enum gptoss_status gptoss_model_release(gptoss_model_t model) {
    if (model == NULL) return gptoss_status_success;
    if (atomic_fetch_sub_explicit(&model->ref_count, 1, memory_order_acq_rel) == 1) model_free(model);
    return gptoss_status_success;
}
