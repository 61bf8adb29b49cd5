/*
 * The hot loop of record validation in C: record_validation._walk, byte for byte.
 *
 * walk(buf, position, count, index) reads every complete record of `buf` from
 * `position` until `count` records have been read in all (`index` already were), and
 * returns a tuple:
 *
 *     (index, position, ts_low, ts_high, keyless, error, a, b)
 *
 * `position` is where the walk stopped (after the last complete record); `ts_low` and
 * `ts_high` are the smallest and largest timestamp delta seen (INT64_MAX / INT64_MIN if
 * none), `keyless` the records with a null key. `error` is 0, or the kind of framing
 * error found (ERR_* below) with its numbers in `a` and `b`; the Python side builds the
 * message, so both implementations give the same one. Every read is bounds-checked;
 * the GIL is released while walking (the buffer is held).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

enum {
    ERR_NONE = 0,
    ERR_STRUCTURE = 1,       /* a complete record's fields run past the buffer */
    ERR_VARINT_TOO_LONG = 2,
    ERR_VARLONG_TOO_LONG = 3,
    ERR_RECORD_SIZE = 4,     /* a: length */
    ERR_OFFSET_DELTA = 5,    /* a: index, b: offset delta */
    ERR_HEADERS_NEGATIVE = 6,  /* a: count */
    ERR_HEADERS_TOO_MANY = 7,  /* a: count */
    ERR_HEADER_KEY_NEGATIVE = 8,  /* a: size */
    ERR_SIZE_MISMATCH = 9,   /* a: declared, b: read */
};

/* Result of reading a varint: 0 ok, -1 ran past the buffer, 1 too long. */
static int read_varint32(const uint8_t *buf, Py_ssize_t end, Py_ssize_t *pos, int32_t *out)
{
    uint64_t value = 0;
    for (int i = 0; i < 5; i++) {
        if (*pos >= end)
            return -1;
        uint8_t byte = buf[(*pos)++];
        value |= (uint64_t)(byte & 0x7F) << (7 * i);
        if (byte < 0x80) {
            uint32_t u = (uint32_t)(value & 0xFFFFFFFFu);
            *out = (int32_t)(u >> 1) ^ -(int32_t)(u & 1);
            return 0;
        }
    }
    return 1;
}

static int read_varint64(const uint8_t *buf, Py_ssize_t end, Py_ssize_t *pos, int64_t *out)
{
    uint64_t value = 0;
    for (int i = 0; i < 10; i++) {
        if (*pos >= end)
            return -1;
        uint8_t byte = buf[(*pos)++];
        value |= (uint64_t)(byte & 0x7F) << (7 * i);
        if (byte < 0x80) {
            *out = (int64_t)(value >> 1) ^ -(int64_t)(value & 1);
            return 0;
        }
    }
    return 1;
}

typedef struct {
    Py_ssize_t index, position;
    int64_t ts_low, ts_high;
    Py_ssize_t keyless;
    int error;
    int64_t a, b;
} walk_state;

/* A field of a complete record: past the buffer is a structure error. */
#define FIELD32(var)                                                  \
    do {                                                              \
        int r_ = read_varint32(buf, end, &pos, &(var));               \
        if (r_ < 0) { s->error = ERR_STRUCTURE; goto done; }          \
        if (r_ > 0) { s->error = ERR_VARINT_TOO_LONG; goto done; }    \
    } while (0)

static void walk_records(const uint8_t *buf, Py_ssize_t end, Py_ssize_t count, walk_state *s)
{
    Py_ssize_t pos = s->position;
    Py_ssize_t start = pos;
    while (s->index < count) {
        start = pos;
        int32_t length;
        int r = read_varint32(buf, end, &pos, &length);
        if (r < 0)
            break; /* the length itself is cut: an incomplete record */
        if (r > 0) {
            s->error = ERR_VARINT_TOO_LONG;
            goto done;
        }
        int64_t record_end = (int64_t)pos + length;
        if (record_end > (int64_t)end)
            break; /* ends beyond this buffer: incomplete */
        if (length <= 0) {
            s->error = ERR_RECORD_SIZE;
            s->a = length;
            goto done;
        }
        pos += 1; /* attributes */
        if (pos >= end) {
            s->error = ERR_STRUCTURE;
            goto done;
        }
        int64_t delta;
        r = read_varint64(buf, end, &pos, &delta);
        if (r < 0) {
            s->error = ERR_STRUCTURE;
            goto done;
        }
        if (r > 0) {
            s->error = ERR_VARLONG_TOO_LONG;
            goto done;
        }
        if (delta < s->ts_low)
            s->ts_low = delta;
        if (delta > s->ts_high)
            s->ts_high = delta;
        int32_t offset_delta;
        FIELD32(offset_delta);
        if ((Py_ssize_t)offset_delta != s->index) {
            s->error = ERR_OFFSET_DELTA;
            s->a = s->index;
            s->b = offset_delta;
            goto done;
        }
        int32_t size;
        FIELD32(size); /* key */
        if (size > 0)
            pos += size;
        else if (size < 0)
            s->keyless++;
        if (pos >= end) {
            s->error = ERR_STRUCTURE;
            goto done;
        }
        FIELD32(size); /* value */
        if (size > 0)
            pos += size;
        if (pos >= end) {
            s->error = ERR_STRUCTURE;
            goto done;
        }
        int32_t headers;
        FIELD32(headers);
        if (headers < 0) {
            s->error = ERR_HEADERS_NEGATIVE;
            s->a = headers;
            goto done;
        }
        if (headers != 0 && (int64_t)headers > record_end - (int64_t)pos) {
            s->error = ERR_HEADERS_TOO_MANY;
            s->a = headers;
            goto done;
        }
        for (int32_t h = 0; h < headers; h++) {
            FIELD32(size);
            if (size < 0) {
                s->error = ERR_HEADER_KEY_NEGATIVE;
                s->a = size;
                goto done;
            }
            pos += size;
            if (pos > end) { /* the next read fails: the Python walk's IndexError */
                s->error = ERR_STRUCTURE;
                goto done;
            }
            FIELD32(size);
            if (size > 0)
                pos += size;
        }
        if ((int64_t)pos != record_end) {
            s->error = ERR_SIZE_MISMATCH;
            s->a = length;
            s->b = (int64_t)pos - record_end + length;
            goto done;
        }
        s->index++;
        start = pos;
    }
done:
    s->position = start;
}

static PyObject *walk(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t position, count, index;
    if (!PyArg_ParseTuple(args, "y*nnn", &view, &position, &count, &index))
        return NULL;
    if (position < 0 || position > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "position outside the buffer");
        return NULL;
    }
    walk_state s = {index, position, INT64_MAX, INT64_MIN, 0, ERR_NONE, 0, 0};
    Py_BEGIN_ALLOW_THREADS
    walk_records((const uint8_t *)view.buf, view.len, count, &s);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return Py_BuildValue("(nnLLniLL)", s.index, s.position, (long long)s.ts_low,
                         (long long)s.ts_high, s.keyless, s.error, (long long)s.a,
                         (long long)s.b);
}

static PyMethodDef methods[] = {
    {"walk", walk, METH_VARARGS, "Walk complete v2 records: see _record_walk.c."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_record_walk", NULL, -1, methods};

PyMODINIT_FUNC PyInit__record_walk(void)
{
    return PyModule_Create(&module);
}
