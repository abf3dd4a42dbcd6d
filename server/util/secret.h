/* Secrets kept in the store (tenant database passwords, admin conninfos) are sealed with
 * AES-256-GCM under the platform key: 32 bytes from security.secret_key, or from
 * <data_dir>/secret.key, created with mode 0600 on first start. */
#ifndef SDO_SECRET_H
#define SDO_SECRET_H

#include <stddef.h>

#include "util/util.h"

typedef struct secret_key {
    unsigned char key[32];
} secret_key;

/* Loads the key from hex (64 digits) or, when hex is empty, from path, creating the file with
 * a new random key if it does not exist. Returns 0 or -1 with a message in err. */
int secret_key_load(secret_key *k, const char *hex, const char *path, char *err, size_t errsz);

/* Seals plaintext: out receives version(1) | nonce(12) | ciphertext | tag(16), malloc'ed. */
int secret_seal(const secret_key *k, const char *plaintext, unsigned char **out, size_t *outlen);

/* Opens a sealed blob into a malloc'ed NUL-terminated string; DATA_LOSS when it does not
 * authenticate (wrong key or altered data). */
int secret_open(const secret_key *k, const unsigned char *in, size_t inlen, char **plaintext,
                sdo_error *err);

/* A random password of n characters from [A-Za-z0-9] into out (n+1 bytes). */
int secret_password(char *out, size_t n);

#endif
