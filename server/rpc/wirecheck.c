/* Walks the wire format with the message descriptor: length-delimited fields are checked
 * when they are strings and descended into when they are messages (map entries included). */
#include "rpc/wirecheck.h"

#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 32

int rpc_utf8_ok(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i <= n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

static size_t varint(const uint8_t *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *out = v;
            return i + 1;
        }
    }
    return 0;
}

static void path_join(char *field, size_t fieldsz, const char *name)
{
    size_t have = strlen(field);
    /* fields are reported innermost-last: prepend the outer name */
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s%s%s", name, have ? "." : "", field);
    snprintf(field, fieldsz, "%s", tmp);
}

static int walk(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len, char *field,
                size_t fieldsz, int depth)
{
    if (depth > MAX_DEPTH)
        return -1;
    size_t pos = 0;
    while (pos < len) {
        uint64_t key, n;
        size_t used = varint(p + pos, len - pos, &key);
        if (!used)
            return -1;
        pos += used;
        unsigned wt = (unsigned)(key & 7);
        uint32_t num = (uint32_t)(key >> 3);
        switch (wt) {
        case 0:
            used = varint(p + pos, len - pos, &n);
            if (!used)
                return -1;
            pos += used;
            break;
        case 1:
            if (len - pos < 8)
                return -1;
            pos += 8;
            break;
        case 5:
            if (len - pos < 4)
                return -1;
            pos += 4;
            break;
        case 2: {
            used = varint(p + pos, len - pos, &n);
            if (!used || n > len - pos - used)
                return -1;
            pos += used;
            const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, num);
            if (f && f->type == PROTOBUF_C_TYPE_STRING) {
                if (!rpc_utf8_ok(p + pos, (size_t)n)) {
                    snprintf(field, fieldsz, "%s", f->name);
                    return 1;
                }
            } else if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                int rc = walk(f->descriptor, p + pos, (size_t)n, field, fieldsz, depth + 1);
                if (rc != 0) {
                    if (rc == 1)
                        path_join(field, fieldsz, f->name);
                    return rc;
                }
            }
            pos += (size_t)n;
            break;
        }
        default:
            return -1; /* groups are not proto3 */
        }
    }
    return 0;
}

int rpc_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                      char *field, size_t fieldsz)
{
    if (fieldsz)
        field[0] = 0;
    return walk(d, data, len, field, fieldsz, 0);
}
