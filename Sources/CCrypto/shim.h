#ifndef PRISM_CCRYPTO_SHIM_H
#define PRISM_CCRYPTO_SHIM_H
/* OpenSSL's libcrypto (already in the process through libcurl): AES-256-GCM, HKDF-SHA256, SHA-256
 * and the CSPRNG for the admin store, SHA-1 for Redis script names; SHA-256 and HMAC-SHA256 for
 * plugins (PluginKit). Each helper returns 1 on success, 0 on failure. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <stddef.h>
#include <stdint.h>

/* out receives nonce (12) || ciphertext (length) || tag (16). */
static inline int prism_aes_gcm_seal(const uint8_t key[32], const uint8_t *plaintext, int length, uint8_t *out) {
    if (RAND_bytes(out, 12) != 1) return 0;
    EVP_CIPHER_CTX *context = EVP_CIPHER_CTX_new();
    if (context == NULL) return 0;
    int written = 0, final_length = 0, ok =
        EVP_EncryptInit_ex(context, EVP_aes_256_gcm(), NULL, key, out) == 1 &&
        EVP_EncryptUpdate(context, out + 12, &written, plaintext, length) == 1 &&
        EVP_EncryptFinal_ex(context, out + 12 + written, &final_length) == 1 &&
        EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, 16, out + 12 + length) == 1;
    EVP_CIPHER_CTX_free(context);
    return ok;
}

/* sealed = nonce || ciphertext || tag (length >= 28); out receives length - 28 bytes. 0 when the
 * key is wrong or the data was altered (the tag does not verify). */
static inline int prism_aes_gcm_open(const uint8_t key[32], const uint8_t *sealed, int length, uint8_t *out) {
    if (length < 28) return 0;
    int body = length - 28;
    EVP_CIPHER_CTX *context = EVP_CIPHER_CTX_new();
    if (context == NULL) return 0;
    int written = 0, final_length = 0, ok =
        EVP_DecryptInit_ex(context, EVP_aes_256_gcm(), NULL, key, sealed) == 1 &&
        EVP_DecryptUpdate(context, out, &written, sealed + 12, body) == 1 &&
        EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, 16, (void *)(sealed + 12 + body)) == 1 &&
        EVP_DecryptFinal_ex(context, out + written, &final_length) == 1;
    EVP_CIPHER_CTX_free(context);
    return ok;
}

static inline int prism_hkdf_sha256(const uint8_t *secret, size_t secret_length, const uint8_t *salt,
                                    size_t salt_length, const uint8_t *info, size_t info_length,
                                    uint8_t *out, size_t out_length) {
    EVP_PKEY_CTX *context = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    if (context == NULL) return 0;
    size_t length = out_length;
    int ok = EVP_PKEY_derive_init(context) == 1 &&
             EVP_PKEY_CTX_set_hkdf_md(context, EVP_sha256()) == 1 &&
             EVP_PKEY_CTX_set1_hkdf_salt(context, salt, (int)salt_length) == 1 &&
             EVP_PKEY_CTX_set1_hkdf_key(context, secret, (int)secret_length) == 1 &&
             EVP_PKEY_CTX_add1_hkdf_info(context, info, (int)info_length) == 1 &&
             EVP_PKEY_derive(context, out, &length) == 1 && length == out_length;
    EVP_PKEY_CTX_free(context);
    return ok;
}

/* sha1 != 0: SHA-1 (20 bytes; only to name Lua scripts for Redis's EVALSHA), else SHA-256 (32). */
static inline int prism_digest(int sha1, const uint8_t *data, size_t length, uint8_t out[32]) {
    unsigned int written = 0;
    return EVP_Digest(data, length, out, &written, sha1 ? EVP_sha1() : EVP_sha256(), NULL) == 1 &&
           written == (sha1 ? 20u : 32u);
}

/* A streaming SHA-256 (plugins' cache keys): begin, update as often as needed, then finish (which
 * frees the context) or abandon. */
static inline EVP_MD_CTX *prism_sha256_begin(void) {
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    if (context != NULL && EVP_DigestInit_ex(context, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(context);
        return NULL;
    }
    return context;
}

static inline int prism_sha256_update(EVP_MD_CTX *context, const void *data, size_t length) {
    return EVP_DigestUpdate(context, data, length) == 1;
}

static inline int prism_sha256_finish(EVP_MD_CTX *context, uint8_t out[32]) {
    unsigned int written = 0;
    int ok = EVP_DigestFinal_ex(context, out, &written) == 1 && written == 32;
    EVP_MD_CTX_free(context);
    return ok;
}

static inline void prism_sha256_abandon(EVP_MD_CTX *context) { EVP_MD_CTX_free(context); }

static inline int prism_hmac_sha256(const uint8_t *key, size_t key_length, const uint8_t *data, size_t length,
                                    uint8_t out[32]) {
    unsigned int written = 0;
    return HMAC(EVP_sha256(), key, (int)key_length, data, length, out, &written) != NULL && written == 32;
}

static inline int prism_random_bytes(uint8_t *out, int length) { return RAND_bytes(out, length) == 1; }
#endif
