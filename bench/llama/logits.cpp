// The logits llama.cpp computes for a list of token ids, written as float32 .npy [tokens, vocab]:
// the counterpart of `archc forward --ids ... --out` for bench/llama/check.ts. No tokenizer: ids in,
// logits out, one sequence, batch 1.
//
//   logits <model.gguf> <ids, comma-separated> <out.npy> [--step] [--threads N] [--kv-f16]
//
// Default: the whole prompt in one llama_decode with every position's logits requested (the
// prefill path). --step: one token per llama_decode (the decode path: conv and SSM state carried
// in llama.cpp's recurrent cache, K/V in its attention cache). The K/V cache is f32 unless --kv-f16
// (llama.cpp's default, which llama-bench times): an f16 cache alone moves logits by ~1e-3.
// Build: bench/llama/build.sh compiles it against the libllama that script builds.

#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static void quiet(ggml_log_level level, const char * text, void *) {
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static bool write_npy(const char * path, const std::vector<float> & data, size_t rows, size_t cols) {
    // version 1.0 header: magic, version, little-endian u16 length, dict padded with spaces to a
    // multiple of 64 bytes (counting the 10 bytes before it) and ending in '\n'
    std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
    size_t total = 10 + dict.size() + 1;
    dict.append((64 - total % 64) % 64, ' ');
    dict.push_back('\n');
    std::string tmp = std::string(path) + ".tmp";
    FILE * f = fopen(tmp.c_str(), "wb");
    if (!f) return false;
    const unsigned char head[8] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0 };
    const unsigned short len = (unsigned short) dict.size();
    bool ok = fwrite(head, 1, 8, f) == 8 && fwrite(&len, 2, 1, f) == 1 &&
              fwrite(dict.data(), 1, dict.size(), f) == dict.size() &&
              fwrite(data.data(), sizeof(float), data.size(), f) == data.size();
    ok = (fclose(f) == 0) && ok;
    // whole or not at all
    if (!ok || rename(tmp.c_str(), path) != 0) { remove(tmp.c_str()); return false; }
    return true;
}

int main(int argc, char ** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s <model.gguf> <ids> <out.npy> [--step] [--threads N]\n", argv[0]);
        return 2;
    }
    bool step = false, kv_f16 = false;
    int threads = 2;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--step")) step = true;
        else if (!strcmp(argv[i], "--kv-f16")) kv_f16 = true;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
    }
    std::vector<llama_token> ids;
    for (const char * p = argv[2]; *p;) {
        char * end;
        long v = strtol(p, &end, 10);
        if (end == p) { fprintf(stderr, "ids: expected comma-separated integers at '%s'\n", p); return 2; }
        ids.push_back((llama_token) v);
        p = *end == ',' ? end + 1 : end;
    }
    if (ids.empty()) { fprintf(stderr, "ids: empty\n"); return 2; }

    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.progress_callback = [](float, void *) { return true; };  // no loading dots
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "%s: could not load the model\n", argv[1]); return 1; }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    for (llama_token t : ids) {
        if (t < 0 || t >= n_vocab) { fprintf(stderr, "ids: %d outside the vocabulary [0, %d)\n", t, n_vocab); return 2; }
    }

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t) ids.size() + 16;
    cp.n_batch = cp.n_ubatch = (uint32_t) ids.size();
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = threads;
    if (!kv_f16) cp.type_k = cp.type_v = GGML_TYPE_F32;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "could not create a context\n"); return 1; }

    const size_t T = ids.size();
    std::vector<float> out(T * (size_t) n_vocab);
    llama_batch batch = llama_batch_init((int32_t) T, 0, 1);
    // one call with every position (prefill), or T calls of one token each (decode)
    const size_t per_call = step ? 1 : T;
    for (size_t s = 0; s < T; s += per_call) {
        batch.n_tokens = (int32_t) per_call;
        for (size_t i = 0; i < per_call; i++) {
            batch.token[i] = ids[s + i];
            batch.pos[i] = (llama_pos) (s + i);
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = 1;
        }
        if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "llama_decode failed at token %zu\n", s); return 1; }
        for (size_t i = 0; i < per_call; i++) {
            const float * l = llama_get_logits_ith(ctx, (int32_t) i);
            memcpy(&out[(s + i) * n_vocab], l, sizeof(float) * n_vocab);
        }
    }
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    if (!write_npy(argv[3], out, T, (size_t) n_vocab)) { fprintf(stderr, "%s: could not write\n", argv[3]); return 1; }
    return 0;
}
