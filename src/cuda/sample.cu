/* Sampling: softmax with temperature (divides) and the inverse-CDF draw; the penalties;
 * the draw from logits (temperature, top-k, top-p) as a radix select.
 *
 * Draw from logits (kernels.h gptoss_f32_sample_logits; the masses and thresholds are the
 * helpers of src/common/math.h, as on the CPU). Every candidate has an order value:
 * ord = key << idbits | index in draw order (key: gptoss_sample_key, idbits: the bits of
 * num_channels - 1), ord = index in index order; ords are distinct and sort like the
 * contract's order. A boundary of the contract is the first candidate (smallest ord)
 * whose inclusive prefix count (top-k) or mass (top-p, the draw) reaches an integer
 * threshold; it is found digit by digit, kDigitBits of ord at a time from the top
 * (rounds: one launch each): a round makes the histogram (count and 128-bit mass
 * per digit value) of the candidates whose ord starts with the digits found so far and
 * ends at or before the previous boundary (limit), and the grid's last block scans it:
 * the first digit whose bin takes the running total to the threshold is the next digit,
 * the bins before it go into the total before the prefix. After the last round the prefix
 * is the boundary's ord, its bin holds just it. All sums are of integers (atomics in any
 * order give the same result): the token does not depend on the launch or the timing.
 *
 * Launches, all on the stream (no host synchronisation; they can be recorded in a graph):
 * init (the state), first (the first logit in draw order: min of key << 32 | index; the
 * greedy cases end here), totals (candidates' count and mass, then the first phase's
 * threshold), then the rounds of each phase that is on: top-k (when top_k != 0; the
 * phase ends at once when top_k >= the candidates), top-p (top_p < 1), the draw. Each
 * phase starts the next with its boundary as the limit and its mass as the total. The
 * token is written by the block that decides it. Where the work goes: every launch reads
 * the logits once (0.8 MB at the real vocabulary); the exps are those of the candidates
 * in the histogram (all of them in a phase's first round). */
#include "cuda/common.cuh"

namespace {

__global__ void __launch_bounds__(1024) softmax_kernel(const float* logits, const uint32_t* argmax, float* prob,
                                                      float* sum, uint32_t num_tokens, uint32_t C, float temperature,
                                                      uint32_t* error_word) {
    __shared__ float scratch[32];
    for (uint32_t t = blockIdx.x; t < num_tokens; t += gridDim.x) {
        const float* row = logits + (size_t) t * C;
        float* p = prob + (size_t) t * C;
        const uint32_t a = argmax[t];
        if (a >= C) {
            if (threadIdx.x == 0) {
                gptoss_d_set_error(error_word, GPTOSS_CUDA_ERROR_ARGMAX);
                sum[t] = __uint_as_float(0x7FC00000u);
            }
            for (uint32_t i = threadIdx.x; i < C; i += blockDim.x) p[i] = __uint_as_float(0x7FC00000u);
            continue;
        }
        const float m = row[a];
        float local = 0.0f;
        for (uint32_t i = threadIdx.x; i < C; i += blockDim.x) {
            const float v = expf((row[i] - m) / temperature);
            p[i] = v;
            local += v;
        }
        local = gptoss_d_block_sum(local, scratch);
        if (threadIdx.x == 0) sum[t] = local;
        __syncthreads();
    }
}

/* One block of 1024 threads; chunks of 4096 values, 4 consecutive per thread. */
__global__ void __launch_bounds__(1024) sample_kernel(const float* prob, const float* sum, uint32_t* prediction,
                                                     uint32_t C, uint64_t seed, uint64_t offset) {
    __shared__ float warp_tot[32];
    __shared__ uint32_t found_s;
    __shared__ int last_pos_s;
    const uint32_t tid = threadIdx.x, lane = tid & 31u, warp = tid >> 5;
    const uint32_t word = gptoss_squares32(offset, seed);
    const float u = (float) (word & 0xFFFFFFu) * 0x1.0p-24f;
    const float target = fmaxf(u * sum[0], 0x1.0p-149f);
    if (tid == 0) {
        found_s = 0xFFFFFFFFu;
        last_pos_s = -1;
    }
    __syncthreads();
    float carry = 0.0f;
    for (uint32_t base = 0; base < C; base += 4096) {
        const uint32_t i0 = base + tid * 4;
        float v[4];
#pragma unroll
        for (int j = 0; j < 4; j++) v[j] = i0 + j < C ? prob[i0 + j] : 0.0f;
        float a[4];
        a[0] = v[0];
        a[1] = a[0] + v[1];
        a[2] = a[1] + v[2];
        a[3] = a[2] + v[3];
        int last = -1;
#pragma unroll
        for (int j = 0; j < 4; j++)
            if (v[j] > 0.0f) last = (int) (i0 + j);
        /* inclusive warp scan of the thread totals */
        float incl = a[3];
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float n = __shfl_up_sync(0xFFFFFFFFu, incl, o);
            if (lane >= (uint32_t) o) incl += n;
        }
        if (lane == 31) warp_tot[warp] = incl;
        __syncthreads();
        if (warp == 0) {
            float w = warp_tot[lane];
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const float n = __shfl_up_sync(0xFFFFFFFFu, w, o);
                if (lane >= (uint32_t) o) w += n;
            }
            warp_tot[lane] = w; /* inclusive over warps */
        }
        __syncthreads();
        const float warp_base = warp > 0 ? warp_tot[warp - 1] : 0.0f;
        const float excl = warp_base + (incl - a[3]);
        const float total = warp_tot[31];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            if (i0 + j < C && carry + (excl + a[j]) >= target) {
                atomicMin(&found_s, i0 + j);
                break;
            }
        }
        if (last >= 0) atomicMax(&last_pos_s, last);
        __syncthreads();
        if (found_s != 0xFFFFFFFFu) break;
        carry += total;
        __syncthreads(); /* warp_tot reused */
    }
    if (tid == 0) {
        uint32_t r = found_s;
        if (r == 0xFFFFFFFFu) r = last_pos_s >= 0 ? (uint32_t) last_pos_s : C - 1;
        *prediction = r;
    }
}

/* ---- penalties ---- */

__global__ void apply_penalties_kernel(const float* logits, const uint32_t* counts, float* output, uint32_t V,
                                       float presence, float frequency) {
    gptoss_d_pdl_trigger();
    for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < V; i += (size_t) gridDim.x * blockDim.x) {
        const uint32_t count = counts[i];
        const float logit = logits[i];
        output[i] = count != 0 ? __fsub_rn(logit, __fadd_rn(presence, __fmul_rn(frequency, (float) count))) : logit;
    }
}

/* ---- draw from logits ---- */

constexpr int kDigitBits = 10;
constexpr int kBins = 1 << kDigitBits;
constexpr int kThreads = kBins; /* one bin per thread when a block scans the histogram */
constexpr uint32_t kIdsPerBlock = 2u * kThreads;

enum Phase : uint32_t { kPhaseNone = 0, kPhaseTopK = 1, kPhaseTopP = 2, kPhaseDraw = 3, kPhaseDone = 4 };

struct SampleParams {
    const float* logits;
    uint32_t* prediction;
    uint32_t num_channels;
    uint32_t idbits;    /* bits of num_channels - 1 */
    uint32_t rounds;    /* digits of an ord */
    uint32_t key_order; /* ord = key << idbits | index (else ord = index) */
    uint32_t top_k;
    float top_p;
    float temperature;
    uint32_t u24;       /* the draw's 24-bit word */
};

/* In the scratch buffer; init_kernel starts it for every call. */
struct SampleState {
    unsigned long long first; /* min over the logits of key << 32 | index */
    double m, inv_t;
    uint32_t phase;           /* Phase */
    uint32_t by_count;        /* the threshold is on the count (top-k), else on the mass */
    unsigned long long prefix; /* the digits of the boundary's ord found so far */
    unsigned long long limit;  /* ords after this are out (the previous boundary) */
    gptoss_u128 threshold;
    gptoss_u128 mass_before;   /* of the candidates before the prefix (within the limit) */
    unsigned long long count_before;
    unsigned long long total_count, total_lo, total_hi; /* totals_kernel: the candidates */
    unsigned int hist_count[kBins]; /* the round's histogram, zero between rounds */
    unsigned long long hist_lo[kBins], hist_hi[kBins];
};

__device__ __forceinline__ gptoss_u128 make_u128(unsigned long long lo, unsigned long long hi) {
    return ((gptoss_u128) hi << 64) | lo;
}

/* (*hi, *lo) += v, exactly, in any order with other such additions (the carry of the low
 * half goes into the high half). */
__device__ __forceinline__ void atomic_add_u128(unsigned long long* lo, unsigned long long* hi, gptoss_u128 v) {
    const unsigned long long vlo = (unsigned long long) v;
    const unsigned long long vhi = (unsigned long long) (v >> 64);
    const unsigned long long old = atomicAdd(lo, vlo);
    const unsigned long long carry = old + vlo < old ? 1ull : 0ull;
    if (vhi + carry != 0) atomicAdd(hi, vhi + carry);
}

/* Whether this block is the grid's last to finish (after its writes, fenced); the last
 * block resets the counter for the next launch. */
__device__ __forceinline__ bool last_block(uint32_t* counter) {
    __shared__ bool is_last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        is_last = atomicAdd(counter, 1u) == gridDim.x - 1;
        if (is_last) *counter = 0;
    }
    __syncthreads();
    if (is_last) __threadfence();
    return is_last;
}

/* The phase after `done` (kPhaseNone: the start, with `candidates` candidates) with
 * `total` the mass it keeps: its threshold, an empty prefix, the limit. Called by one
 * thread. */
__device__ void start_phase(SampleState* st, const SampleParams& p, uint32_t done, gptoss_u128 total,
                            unsigned long long limit, unsigned long long candidates) {
    uint32_t next = done == kPhaseNone && p.top_k != 0 ? kPhaseTopK
                    : done < kPhaseTopP && p.top_p < 1.0f ? kPhaseTopP
                                                           : kPhaseDraw;
    if (next == kPhaseTopK && (unsigned long long) p.top_k >= candidates) {
        next = p.top_p < 1.0f ? kPhaseTopP : kPhaseDraw; /* top-k keeps every candidate */
    }
    st->phase = next;
    st->by_count = next == kPhaseTopK;
    st->threshold = next == kPhaseTopK   ? (gptoss_u128) p.top_k
                    : next == kPhaseTopP ? gptoss_sample_top_p_threshold(total, p.top_p)
                                         : gptoss_sample_draw_threshold(total, p.u24);
    st->prefix = 0;
    st->limit = limit;
    st->mass_before = 0;
    st->count_before = 0;
}

__device__ __forceinline__ unsigned long long order_value(const SampleParams& p, float logit, uint32_t i) {
    return p.key_order ? ((unsigned long long) gptoss_sample_key(logit) << p.idbits) | i : i;
}

__global__ void __launch_bounds__(kThreads) sample_init_kernel(SampleState* st) {
    gptoss_d_pdl_trigger();
    for (int b = threadIdx.x; b < kBins; b += blockDim.x) {
        st->hist_count[b] = 0;
        st->hist_lo[b] = 0;
        st->hist_hi[b] = 0;
    }
    if (threadIdx.x == 0) {
        st->first = ~0ull;
        st->phase = kPhaseNone;
        st->total_count = 0;
        st->total_lo = 0;
        st->total_hi = 0;
    }
}

/* The first logit in draw order; its block decides the greedy cases. */
__global__ void __launch_bounds__(kThreads) sample_first_kernel(SampleParams p, SampleState* st, uint32_t* counter) {
    __shared__ unsigned long long warp_best[kThreads / 32];
    gptoss_d_pdl_trigger();
    unsigned long long best = ~0ull;
    const uint32_t begin = blockIdx.x * kIdsPerBlock, n = min(kIdsPerBlock, p.num_channels - begin);
    for (uint32_t j = threadIdx.x; j < n; j += kThreads) {
        const uint32_t i = begin + j;
        const unsigned long long r = ((unsigned long long) gptoss_sample_key(p.logits[i]) << 32) | i;
        best = r < best ? r : best;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long other = __shfl_xor_sync(0xFFFFFFFFu, best, o);
        best = other < best ? other : best;
    }
    if ((threadIdx.x & 31) == 0) warp_best[threadIdx.x >> 5] = best;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < kThreads / 32; w++) best = warp_best[w] < best ? warp_best[w] : best;
        atomicMin(&st->first, best);
    }
    if (!last_block(counter) || threadIdx.x != 0) return;
    const unsigned long long first = atomicAdd(&st->first, 0ull);
    const uint32_t index = (uint32_t) first;
    const float m = p.logits[index];
    if ((uint32_t) (first >> 32) == UINT32_MAX) { /* every logit NaN */
        st->phase = kPhaseDone;
        *p.prediction = 0;
    } else if (p.temperature == 0.0f || !isfinite(m)) {
        st->phase = kPhaseDone;
        *p.prediction = index;
    } else {
        st->m = (double) m;
        st->inv_t = 1.0 / (double) p.temperature;
    }
}

/* The candidates' count and mass; the last block starts the first phase. */
__global__ void __launch_bounds__(kThreads) sample_totals_kernel(SampleParams p, SampleState* st, uint32_t* counter) {
    __shared__ unsigned long long block_count, block_lo, block_hi;
    gptoss_d_pdl_trigger();
    if (st->phase == kPhaseDone) return;
    if (threadIdx.x == 0) block_count = block_lo = block_hi = 0;
    __syncthreads();
    const double m = st->m, inv_t = st->inv_t;
    unsigned long long count = 0;
    gptoss_u128 mass = 0;
    const uint32_t begin = blockIdx.x * kIdsPerBlock, n = min(kIdsPerBlock, p.num_channels - begin);
    for (uint32_t j = threadIdx.x; j < n; j += kThreads) {
        const double z = gptoss_sample_z(p.logits[begin + j], m, inv_t);
        if (z > GPTOSS_SAMPLE_NEVER) {
            count++;
            mass += gptoss_sample_mass(z);
        }
    }
    if (count != 0) {
        atomicAdd(&block_count, count);
        atomic_add_u128(&block_lo, &block_hi, mass);
    }
    __syncthreads();
    if (threadIdx.x == 0 && block_count != 0) {
        atomicAdd(&st->total_count, block_count);
        atomic_add_u128(&st->total_lo, &st->total_hi, make_u128(block_lo, block_hi));
    }
    if (!last_block(counter) || threadIdx.x != 0) return;
    const unsigned long long candidates = atomicAdd(&st->total_count, 0ull);
    const gptoss_u128 total = make_u128(atomicAdd(&st->total_lo, 0ull), atomicAdd(&st->total_hi, 0ull));
    start_phase(st, p, kPhaseNone, total, ~0ull, candidates);
}

/* Round `round` of phase `phase` (nothing to do unless that phase is running). */
__global__ void __launch_bounds__(kThreads) sample_round_kernel(SampleParams p, SampleState* st, uint32_t* counter,
                                                               uint32_t phase, uint32_t round) {
    __shared__ unsigned int bin_count[kBins];
    __shared__ unsigned long long bin_lo[kBins], bin_hi[kBins];
    gptoss_d_pdl_trigger();
    if (st->phase != phase) return; /* the same for every block: written by earlier launches */
    /* the state as this launch found it (the deciding thread changes it at the end) */
    const double m = st->m, inv_t = st->inv_t;
    const unsigned long long prefix = st->prefix, limit = st->limit, count_before = st->count_before;
    const gptoss_u128 mass_before = st->mass_before, threshold = st->threshold;
    const bool by_count = st->by_count != 0;
    const uint32_t b = threadIdx.x;
    bin_count[b] = 0;
    bin_lo[b] = 0;
    bin_hi[b] = 0;
    __syncthreads();
    const uint32_t shift = (uint32_t) kDigitBits * (p.rounds - 1 - round); /* of this round's digit */
    const uint32_t begin = blockIdx.x * kIdsPerBlock, n = min(kIdsPerBlock, p.num_channels - begin);
    for (uint32_t j = threadIdx.x; j < n; j += kThreads) {
        const uint32_t i = begin + j;
        const float logit = p.logits[i];
        const unsigned long long ord = order_value(p, logit, i);
        if (ord > limit || (round != 0 && (ord >> (shift + kDigitBits)) != prefix)) continue;
        const double z = gptoss_sample_z(logit, m, inv_t);
        if (!(z > GPTOSS_SAMPLE_NEVER)) continue;
        const uint32_t digit = (uint32_t) (ord >> shift) & (kBins - 1);
        atomicAdd(&bin_count[digit], 1u);
        atomic_add_u128(&bin_lo[digit], &bin_hi[digit], gptoss_sample_mass(z));
    }
    __syncthreads();
    if (bin_count[b] != 0) {
        atomicAdd(&st->hist_count[b], bin_count[b]);
        atomic_add_u128(&st->hist_lo[b], &st->hist_hi[b], make_u128(bin_lo[b], bin_hi[b]));
    }
    if (!last_block(counter)) return;

    /* the last block: inclusive scan of the histogram (read and zeroed), one bin per thread */
    const unsigned int own_count = atomicExch(&st->hist_count[b], 0u);
    const gptoss_u128 own_mass = make_u128(atomicExch(&st->hist_lo[b], 0ull), atomicExch(&st->hist_hi[b], 0ull));
    unsigned long long count = own_count;
    gptoss_u128 mass = own_mass;
    __syncthreads(); /* the bins' shared arrays are reused for the scan */
    bin_count[b] = (unsigned int) count;
    bin_lo[b] = (unsigned long long) mass;
    bin_hi[b] = (unsigned long long) (mass >> 64);
    __syncthreads();
    for (uint32_t o = 1; o < (uint32_t) kBins; o <<= 1) {
        unsigned long long c = 0;
        gptoss_u128 w = 0;
        if (b >= o) {
            c = bin_count[b - o];
            w = make_u128(bin_lo[b - o], bin_hi[b - o]);
        }
        __syncthreads();
        count += c;
        mass += w;
        bin_count[b] = (unsigned int) count;
        bin_lo[b] = (unsigned long long) mass;
        bin_hi[b] = (unsigned long long) (mass >> 64);
        __syncthreads();
    }
    /* the running totals through this bin (incl) and before it (excl) */
    const gptoss_u128 incl = by_count ? (gptoss_u128) (count_before + count) : mass_before + mass;
    const gptoss_u128 excl = incl - (by_count ? (gptoss_u128) own_count : own_mass);
    if (!(incl >= threshold && excl < threshold)) return; /* the one bin where the total reaches it */
    const unsigned long long ord = (round == 0 ? 0ull : prefix << kDigitBits) | b;
    const gptoss_u128 new_mass_before = mass_before + (mass - own_mass);
    if (round + 1 < p.rounds) {
        st->prefix = ord;
        st->count_before = count_before + (count - own_count);
        st->mass_before = new_mass_before;
        return;
    }
    /* the boundary: the candidate with this ord (alone in its bin) */
    if (phase == kPhaseDraw) {
        st->phase = kPhaseDone;
        *p.prediction = p.key_order ? (uint32_t) (ord & ((1ull << p.idbits) - 1)) : (uint32_t) ord;
    } else {
        start_phase(st, p, phase, new_mass_before + own_mass, ord, 0);
    }
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_f32_softmax(gptoss_backend_t backend,
                                                      const struct gptoss_f32_softmax_args* args) {
    unsigned threads = 1024;
    while (threads > 32 && threads / 2 >= args->num_channels) threads /= 2;
    const unsigned blocks = args->num_tokens < 65535u ? args->num_tokens : 65535u;
    softmax_kernel<<<blocks, threads, 0, gptoss_cuda_stream(backend)>>>(
        args->logits, args->argmax, args->prob, args->sum, args->num_tokens, args->num_channels, args->temperature,
        gptoss_cuda_error_word(backend));
    GPTOSS_CUDA_LAUNCHED("f32_softmax");
    return gptoss_status_success;
}

extern "C" enum gptoss_status gptoss_cuda_f32_sample(gptoss_backend_t backend,
                                                     const struct gptoss_f32_sample_args* args) {
    sample_kernel<<<1, 1024, 0, gptoss_cuda_stream(backend)>>>(args->prob, args->sum, args->prediction,
                                                               args->num_channels, args->rng_seed, args->rng_offset);
    GPTOSS_CUDA_LAUNCHED("f32_sample");
    return gptoss_status_success;
}

extern "C" enum gptoss_status gptoss_cuda_f32_apply_penalties(gptoss_backend_t backend,
                                                              const struct gptoss_f32_apply_penalties_args* args) {
    const uint32_t blocks = min(gptoss_div_up_u32(args->num_channels, 256), 65535u);
    apply_penalties_kernel<<<blocks, 256, 0, gptoss_cuda_stream(backend)>>>(
        args->logits, args->counts, args->output, args->num_channels, args->presence_penalty,
        args->frequency_penalty);
    GPTOSS_CUDA_LAUNCHED("f32_apply_penalties");
    return gptoss_status_success;
}

extern "C" enum gptoss_status gptoss_cuda_f32_sample_logits(gptoss_backend_t backend,
                                                            const struct gptoss_f32_sample_logits_args* args) {
    const uint32_t V = args->num_channels;
    SampleParams p;
    p.logits = args->logits;
    p.prediction = args->prediction;
    p.num_channels = V;
    p.idbits = V > 1 ? 32u - (uint32_t) __builtin_clz(V - 1) : 0u;
    p.key_order = args->top_k != 0 || args->top_p < 1.0f;
    const uint32_t bits = (p.key_order ? 32u : 0u) + p.idbits;
    p.rounds = bits > 0 ? (bits + kDigitBits - 1) / kDigitBits : 1u;
    p.top_k = args->top_k;
    p.top_p = args->top_p;
    p.temperature = args->temperature;
    p.u24 = gptoss_squares32(args->rng_offset, args->rng_seed) & 0xFFFFFFu;
    void* scratch = nullptr;
    uint32_t* counter = nullptr;
    GPTOSS_TRY(gptoss_cuda_scratch_acquire(backend, sizeof(SampleState), &scratch, 1, &counter));
    SampleState* st = (SampleState*) scratch;
    const cudaStream_t stream = gptoss_cuda_stream(backend);
    const uint32_t blocks = gptoss_div_up_u32(V, kIdsPerBlock);
    sample_init_kernel<<<1, kThreads, 0, stream>>>(st);
    sample_first_kernel<<<blocks, kThreads, 0, stream>>>(p, st, counter);
    sample_totals_kernel<<<blocks, kThreads, 0, stream>>>(p, st, counter);
    const uint32_t phases[3] = {args->top_k != 0 ? kPhaseTopK : kPhaseNone,
                                args->top_p < 1.0f ? kPhaseTopP : kPhaseNone, kPhaseDraw};
    for (int i = 0; i < 3; i++) {
        if (phases[i] == kPhaseNone) continue;
        for (uint32_t r = 0; r < p.rounds; r++) {
            sample_round_kernel<<<blocks, kThreads, 0, stream>>>(p, st, counter, phases[i], r);
        }
    }
    gptoss_cuda_scratch_release(backend);
    GPTOSS_CUDA_LAUNCHED("f32_sample_logits");
    return gptoss_status_success;
}
