/* AES-256-GCM sealing of secrets kept in the store, and the platform key file. */
#include "util/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEAL_VERSION 1
#define NONCE_LEN 12
#define TAG_LEN 16

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int from_hex(secret_key *k, const char *hex)
{
    if (strlen(hex) != 64)
        return -1;
    for (int i = 0; i < 32; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        k->key[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

int secret_key_load(secret_key *k, const char *hex, const char *path, char *err, size_t errsz)
{
    if (hex && hex[0]) {
        if (from_hex(k, hex) < 0) {
            snprintf(err, errsz, "security.secret_key must be 64 hexadecimal digits");
            return -1;
        }
        return 0;
    }
    char buf[80];
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n < 64) {
            snprintf(err, errsz, "%s: expected 64 hexadecimal digits", path);
            return -1;
        }
        buf[64] = 0;
        if (from_hex(k, buf) < 0) {
            snprintf(err, errsz, "%s: expected 64 hexadecimal digits", path);
            return -1;
        }
        return 0;
    }
    if (errno != ENOENT) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* First start: make a key. O_EXCL so that two servers starting together agree. */
    if (RAND_bytes(k->key, 32) != 1) {
        snprintf(err, errsz, "no randomness for the platform key");
        return -1;
    }
    for (int i = 0; i < 32; i++)
        snprintf(buf + 2 * i, 3, "%02x", k->key[i]);
    buf[64] = '\n';
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return secret_key_load(k, NULL, path, err, errsz);
        snprintf(err, errsz, "cannot create the platform key %s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t w = write(fd, buf, 65);
    int rc = (w == 65 && fsync(fd) == 0) ? 0 : -1;
    close(fd);
    if (rc < 0)
        snprintf(err, errsz, "cannot write the platform key %s", path);
    return rc;
}

int secret_seal(const secret_key *k, const char *plaintext, unsigned char **out, size_t *outlen)
{
    size_t n = strlen(plaintext);
    unsigned char *buf = sdo_malloc(1 + NONCE_LEN + n + TAG_LEN);
    buf[0] = SEAL_VERSION;
    if (RAND_bytes(buf + 1, NONCE_LEN) != 1) {
        free(buf);
        return -1;
    }
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0,
        ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k->key, buf + 1) &&
             EVP_EncryptUpdate(ctx, buf + 1 + NONCE_LEN, &len, (const unsigned char *)plaintext,
                               (int)n) &&
             EVP_EncryptFinal_ex(ctx, buf + 1 + NONCE_LEN + len, &len) &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, buf + 1 + NONCE_LEN + n);
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        free(buf);
        return -1;
    }
    *out = buf;
    *outlen = 1 + NONCE_LEN + n + TAG_LEN;
    return 0;
}

int secret_open(const secret_key *k, const unsigned char *in, size_t inlen, char **plaintext,
                sdo_error *err)
{
    if (inlen < 1 + NONCE_LEN + TAG_LEN || in[0] != SEAL_VERSION)
        return sdo_fail(err, SDO_DATA_LOSS, "a sealed secret in the store is malformed");
    size_t n = inlen - 1 - NONCE_LEN - TAG_LEN;
    char *buf = sdo_malloc(n + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0;
    int ok =
        ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k->key, in + 1) &&
        EVP_DecryptUpdate(ctx, (unsigned char *)buf, &len, in + 1 + NONCE_LEN, (int)n) &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)(in + 1 + NONCE_LEN + n)) &&
        EVP_DecryptFinal_ex(ctx, (unsigned char *)buf + len, &len) > 0;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        free(buf);
        return sdo_fail(err, SDO_DATA_LOSS,
                        "a sealed secret in the store does not open with the platform key "
                        "(security.secret_key or the secret.key file changed?)");
    }
    buf[n] = 0;
    *plaintext = buf;
    return 0;
}

int secret_password(char *out, size_t n)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[128];
    if (n > sizeof r || RAND_bytes(r, (int)n) != 1)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[r[i] % 62]; /* 256 = 4 * 62 + 8: a negligible bias */
    out[n] = 0;
    return 0;
}
