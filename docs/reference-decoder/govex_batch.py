#!/usr/bin/env python3
"""A reader for govex batch format v1, written from docs/batch-format.md alone.

Standard library only: hashlib for SHA-256 and SM3 (OpenSSL 3 provides sm3),
and pure-Python LZ4 frame decoding, Ed25519 (RFC 8032) and SM2 (GB/T 32918)
verification. It exists to prove the specification is complete; govex itself
does not use it.

    govex_batch.py inspect BATCH.gvxb PUBLIC.pem   # verify, print the JSON form
    govex_batch.py check manifest.json             # compare with every test vector
"""
import base64
import hashlib
import json
import os
import struct
import sys

MAGIC = bytes([0x89, 0x47, 0x56, 0x58, 0x0D, 0x0A, 0x1A, 0x0A])
KINDS = {1: "change", 2: "snapshot", 3: "repair", 4: "delivery", 5: "feedback"}
POSITION_TYPES = {0: "none", 1: "pg_lsn", 2: "trigger_watermark"}
DIGESTS = {1: "sha256", 2: "sm3"}
SIGNATURES = {1: "ed25519", 2: "sm2"}
SUITE = {1: 1, 2: 2}  # signature algorithm -> its digest algorithm
OPS = {1: "insert", 2: "update", 3: "delete", 4: "truncate"}
LIMITS = dict(header=1 << 20, records=1_000_000, resources=4096, body=256 << 20, columns=1600)


class BatchError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


class Reader:
    def __init__(self, data, offset=0, end=None, on_short="truncated"):
        self.data, self.pos = data, offset
        self.end = len(data) if end is None else end
        self.on_short = on_short

    def take(self, n, what):
        if n < 0 or self.pos + n > self.end:
            raise BatchError(self.on_short, f"{what} needs {n} bytes at offset {self.pos}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u(self, size, what):
        return int.from_bytes(self.take(size, what), "big")

    def i(self, size, what):
        return int.from_bytes(self.take(size, what), "big", signed=True)

    def varint(self, what):
        value = 0
        for index in range(5):
            byte = self.u(1, what)
            value |= (byte & 0x7F) << (7 * index)
            if not byte & 0x80:
                if (index and byte == 0) or value > 0xFFFFFFFF:
                    raise BatchError("invalid_record", f"{what}: not a shortest-form 32-bit varint")
                return value
        raise BatchError("invalid_record", f"{what}: varint longer than 5 bytes")

    def vblob(self, what):
        return self.take(self.varint(what), what)

    def vtext(self, what):
        try:
            return self.vblob(what).decode("utf-8")
        except UnicodeDecodeError:
            raise BatchError("invalid_record", f"{what} is not UTF-8")

    def blob(self, length_size, what):
        return self.take(self.u(length_size, what), what)

    def text(self, length_size, what):
        try:
            return self.blob(length_size, what).decode("utf-8")
        except UnicodeDecodeError:
            raise BatchError("invalid", f"{what} is not UTF-8")


def identifier_ok(text):
    return 1 <= len(text.encode()) <= 64 and all(c.isascii() and (c.isalnum() or c in "._-") for c in text)


# ---------------------------------------------------------------- header

def read_header_fields(r):
    h = {}
    h["node_id"] = r.text(1, "node_id")
    h["node_epoch"] = r.u(8, "node_epoch")
    h["sequence"] = r.u(8, "sequence")
    h["kind"] = r.u(1, "kind")
    h["position_type"] = r.u(1, "position_type")
    h["first_position"] = (r.u(8, "first_position"), r.u(4, "first_position"))
    h["last_position"] = (r.u(8, "last_position"), r.u(4, "last_position"))
    h["complete_through"] = r.u(8, "complete_through")
    h["created_at"] = r.i(8, "created_at")
    h["record_count"] = r.u(4, "record_count")
    count = r.u(2, "resource_count")
    if count > LIMITS["resources"]:
        raise BatchError("limit_exceeded", "resource_count")
    h["resources"] = [r.text(1, "resource") for _ in range(count)]
    h["compression"] = r.u(1, "compression")
    h["uncompressed_length"] = r.u(8, "uncompressed_length")
    h["compressed_length"] = r.u(8, "compressed_length")
    h["digest_algorithm"] = r.u(1, "digest_algorithm")
    h["body_digest"] = r.blob(1, "body_digest")
    h["signature_algorithm"] = r.u(1, "signature_algorithm")
    h["key_id"] = r.blob(1, "key_id")
    present = r.u(1, "provenance_present")
    h["provenance"] = None
    if present == 1:
        h["provenance"] = dict(
            origin_node=r.text(1, "origin_node"), origin_epoch=r.u(8, "origin_epoch"),
            origin_sequence=r.u(8, "origin_sequence"), origin_digest_algorithm=r.u(1, "origin_digest_algorithm"),
            origin_digest=r.blob(1, "origin_digest"), origin_signature_algorithm=r.u(1, "origin_signature_algorithm"),
            origin_key_id=r.blob(1, "origin_key_id"), origin_signature=r.blob(2, "origin_signature"),
            origin_signed_header=r.blob(4, "origin_signed_header"))
    elif present != 0:
        raise BatchError("invalid_header", "provenance_present must be 0 or 1")
    h["extensions"] = []
    for _ in range(r.u(2, "extension_count")):
        ext_type, flags, data = r.u(2, "extension"), r.u(1, "extension"), r.blob(4, "extension")
        if flags > 1:
            raise BatchError("invalid_header", "extension flags")
        if flags == 1:
            raise BatchError("unknown_critical_extension", str(ext_type))
        h["extensions"].append((ext_type, False, data))
    return h


def check_header(h):
    if h["kind"] not in KINDS or h["position_type"] not in POSITION_TYPES or h["compression"] != 1:
        raise BatchError("invalid_header", "unknown kind, position type or compression")
    if h["digest_algorithm"] not in DIGESTS or h["signature_algorithm"] not in SIGNATURES:
        raise BatchError("invalid_header", "unknown algorithm")
    if SUITE[h["signature_algorithm"]] != h["digest_algorithm"]:
        raise BatchError("invalid_header", "digest does not match signature algorithm")
    if not identifier_ok(h["node_id"]) or not all(identifier_ok(x) for x in h["resources"]):
        raise BatchError("invalid_header", "bad identifier")
    if len(set(h["resources"])) != len(h["resources"]):
        raise BatchError("invalid_header", "duplicate resource")
    if h["node_epoch"] == 0 or h["sequence"] == 0:
        raise BatchError("invalid_header", "epoch and sequence must be non-zero")
    if len(h["body_digest"]) != 32 or len(h["key_id"]) != 16:
        raise BatchError("invalid_header", "digest or key id length")
    if h["record_count"] > LIMITS["records"]:
        raise BatchError("limit_exceeded", "record_count")
    if h["uncompressed_length"] > LIMITS["body"]:
        raise BatchError("limit_exceeded", "uncompressed_length")
    if h["compressed_length"] > LIMITS["body"] + LIMITS["body"] // 255 + 65536:
        raise BatchError("limit_exceeded", "compressed_length")
    if h["record_count"] > 0 and h["first_position"] > h["last_position"]:
        raise BatchError("invalid_header", "first_position after last_position")
    if h["position_type"] == 0 and (h["first_position"][0] != 0 or h["last_position"][0] != 0 or h["complete_through"]):
        raise BatchError("invalid_header", "positions must have commit zero")
    if h["kind"] == 4 and h["provenance"] is None:
        raise BatchError("invalid_header", "delivery without provenance")
    if len({e[0] for e in h["extensions"]}) != len(h["extensions"]):
        raise BatchError("invalid_header", "duplicate extension")


def read_signed_region(data):
    """Returns (header, end of signed region); checks magic, version, header_length."""
    if data[:min(8, len(data))] != MAGIC[:min(8, len(data))]:
        raise BatchError("bad_magic", "not a govex batch")
    r = Reader(data)
    r.take(8, "magic")
    version = r.u(2, "format_version")
    if version != 1:
        raise BatchError("unsupported_version", str(version))
    length = r.u(4, "header_length")
    if length > LIMITS["header"]:
        raise BatchError("limit_exceeded", "header_length")
    if 14 + length > len(data):
        raise BatchError("truncated", "header")
    fields = Reader(data, 14, 14 + length, on_short="invalid_header")
    h = read_header_fields(fields)
    if fields.pos != 14 + length:
        raise BatchError("invalid_header", "header_length does not match the fields")
    check_header(h)
    return h, 14 + length


def parse(data):
    h, signed_end = read_signed_region(data)
    r = Reader(data, signed_end)
    sig_len = r.u(2, "signature_length")
    if not 1 <= sig_len <= 512:
        raise BatchError("invalid_header", "signature length")
    signature = r.take(sig_len, "signature")
    remaining = len(data) - r.pos
    if remaining < h["compressed_length"]:
        raise BatchError("truncated", "body")
    if remaining > h["compressed_length"]:
        raise BatchError("trailing_bytes", str(remaining - h["compressed_length"]))
    return h, data[:signed_end], signature, data[r.pos:]


# ---------------------------------------------------------------- keys and signatures

def der_length(data, pos):
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    n = first & 0x7F
    return int.from_bytes(data[pos + 1:pos + 1 + n], "big"), pos + 1 + n


def load_public_key(pem_text):
    body = "".join(line for line in pem_text.splitlines() if line and not line.startswith("-----"))
    der = base64.b64decode(body)
    ed_prefix = bytes.fromhex("302a300506032b6570032100")
    if der.startswith(ed_prefix) and len(der) == 44:
        return "ed25519", der[12:], hashlib.sha256(der).digest()[:16]
    if bytes.fromhex("06082a811ccf5501822d") in der:  # curve OID 1.2.156.10197.1.301
        point = der[-65:]
        if point[0] != 4:
            raise ValueError("SM2 public key is not an uncompressed point")
        return "sm2", (int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big")), hashlib.sha256(der).digest()[:16]
    raise ValueError("neither an Ed25519 nor an SM2 public key")


# Ed25519 (RFC 8032, section 5.1.7), affine-free extended coordinates.
ED_P = 2 ** 255 - 19
ED_Q = 2 ** 252 + 27742317777372353535851937790883648493
ED_D = -121665 * pow(121666, -1, ED_P) % ED_P
ED_SQRT_M1 = pow(2, (ED_P - 1) // 4, ED_P)


def ed_add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa, bb = (y1 - x1) * (y2 - x2) % ED_P, (y1 + x1) * (y2 + x2) % ED_P
    cc, dd = 2 * t1 * t2 * ED_D % ED_P, 2 * z1 * z2 % ED_P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return e * f % ED_P, g * h % ED_P, f * g % ED_P, e * h % ED_P


def ed_mul(s, point):
    result = (0, 1, 1, 0)
    while s:
        if s & 1:
            result = ed_add(result, point)
        point, s = ed_add(point, point), s >> 1
    return result


def ed_decompress(data):
    y = int.from_bytes(data, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= ED_P:
        return None
    x2 = (y * y - 1) * pow(ED_D * y * y + 1, -1, ED_P) % ED_P
    x = pow(x2, (ED_P + 3) // 8, ED_P)
    if (x * x - x2) % ED_P:
        x = x * ED_SQRT_M1 % ED_P
    if (x * x - x2) % ED_P or (x == 0 and sign):
        return None
    if x & 1 != sign:
        x = ED_P - x
    return x, y, 1, x * y % ED_P


def ed_encode(point):
    x, y, z, _ = point
    zi = pow(z, -1, ED_P)
    x, y = x * zi % ED_P, y * zi % ED_P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


ED_G = ed_decompress((4 * pow(5, -1, ED_P) % ED_P).to_bytes(32, "little"))


def ed25519_verify(public, message, signature):
    if len(signature) != 64:
        return False
    a, r = ed_decompress(public), ed_decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= ED_Q:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % ED_Q
    return ed_encode(ed_mul(s, ED_G)) == ed_encode(ed_add(r, ed_mul(h, a)))


# SM2 (GB/T 32918.2) over the recommended curve, with SM3 and ID 1234567812345678.
SM2_P = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF", 16)
SM2_A = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC", 16)
SM2_B = int("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93", 16)
SM2_N = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)
SM2_G = (int("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7", 16),
         int("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0", 16))
SM2_ID = b"1234567812345678"


def sm2_add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % SM2_P == 0:
        return None
    if p1 == p2:
        lam = (3 * x1 * x1 + SM2_A) * pow(2 * y1, -1, SM2_P) % SM2_P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, SM2_P) % SM2_P
    x3 = (lam * lam - x1 - x2) % SM2_P
    return x3, (lam * (x1 - x3) - y1) % SM2_P


def sm2_mul(k, point):
    result = None
    while k:
        if k & 1:
            result = sm2_add(result, point)
        point, k = sm2_add(point, point), k >> 1
    return result


def sm3(data):
    return hashlib.new("sm3", data).digest()


def sm2_verify(public, message, signature):
    try:
        if signature[0] != 0x30:
            return False
        _, pos = der_length(signature, 1)
        values = []
        for _ in range(2):
            if signature[pos] != 0x02:
                return False
            length, pos = der_length(signature, pos + 1)
            values.append(int.from_bytes(signature[pos:pos + length], "big"))
            pos += length
        r, s = values
    except IndexError:
        return False
    if not (1 <= r < SM2_N and 1 <= s < SM2_N):
        return False
    xa, ya = public
    z = sm3(struct.pack(">H", len(SM2_ID) * 8) + SM2_ID + b"".join(
        v.to_bytes(32, "big") for v in (SM2_A, SM2_B, SM2_G[0], SM2_G[1], xa, ya)))
    e = int.from_bytes(sm3(z + message), "big")
    t = (r + s) % SM2_N
    if t == 0:
        return False
    point = sm2_add(sm2_mul(s, SM2_G), sm2_mul(t, public))
    return point is not None and (e + point[0]) % SM2_N == r


def verify_signature(algorithm, public, message, signature):
    return ed25519_verify(public, message, signature) if algorithm == "ed25519" else sm2_verify(public, message, signature)


def verify(h, signed, signature, body, key):
    algorithm, public, key_id = key
    if algorithm != SIGNATURES[h["signature_algorithm"]]:
        raise BatchError("wrong_algorithm", algorithm)
    if key_id != h["key_id"]:
        raise BatchError("wrong_key", key_id.hex())
    digest = hashlib.new(DIGESTS[h["digest_algorithm"]], body).digest()
    if digest != h["body_digest"]:
        raise BatchError("digest_mismatch", digest.hex())
    if not verify_signature(algorithm, public, signed, signature):
        raise BatchError("bad_signature", "signature does not verify")


def verify_origin(h, origin_key):
    p = h["provenance"]
    origin, end = read_signed_region(p["origin_signed_header"])
    if end != len(p["origin_signed_header"]):
        raise BatchError("invalid_header", "origin_signed_header has extra bytes")
    same = (origin["node_id"], origin["node_epoch"], origin["sequence"], origin["body_digest"], origin["key_id"]) == \
        (p["origin_node"], p["origin_epoch"], p["origin_sequence"], p["origin_digest"], p["origin_key_id"])
    if not same:
        raise BatchError("invalid_header", "provenance disagrees with the origin header")
    if not verify_signature(origin_key[0], origin_key[1], p["origin_signed_header"], p["origin_signature"]):
        raise BatchError("bad_signature", "origin signature does not verify")


# ---------------------------------------------------------------- LZ4 frame

def lz4_frame_decompress(frame, expected):
    try:
        if frame[:4] != b"\x04\x22\x4d\x18":
            raise BatchError("corrupt_body", "not an LZ4 frame")
        flg = frame[4]
        if flg >> 6 != 1:
            raise BatchError("corrupt_body", "LZ4 frame version")
        pos = 6 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0) + 1
        block_checksum, content_checksum = flg & 0x10, flg & 0x04
        out = bytearray()
        while True:
            size = int.from_bytes(frame[pos:pos + 4], "little")
            pos += 4
            if size == 0:
                break
            raw, size = size & 0x80000000, size & 0x7FFFFFFF
            block = frame[pos:pos + size]
            if len(block) != size:
                raise BatchError("corrupt_body", "LZ4 block runs past the frame")
            pos += size + (4 if block_checksum else 0)
            if raw:
                out += block
            else:
                lz4_block(block, out, expected)
            if len(out) > expected:
                raise BatchError("corrupt_body", "LZ4 frame larger than declared")
        pos += 4 if content_checksum else 0
        if pos != len(frame):
            raise BatchError("corrupt_body", "bytes after the LZ4 frame")
        if len(out) != expected:
            raise BatchError("corrupt_body", "LZ4 frame size differs from uncompressed_length")
        return bytes(out)
    except IndexError:
        raise BatchError("corrupt_body", "LZ4 frame truncated")


def lz4_block(block, out, limit):
    i = 0
    while i < len(block):
        token = block[i]
        i += 1
        literal = token >> 4
        if literal == 15:
            while True:
                extra = block[i]
                i += 1
                literal += extra
                if extra != 255:
                    break
        out += block[i:i + literal]
        i += literal
        if i >= len(block):
            break
        offset = block[i] | block[i + 1] << 8
        i += 2
        length = token & 15
        if length == 15:
            while True:
                extra = block[i]
                i += 1
                length += extra
                if extra != 255:
                    break
        length += 4
        if offset == 0 or offset > len(out) or len(out) + length > limit:
            raise BatchError("corrupt_body", "bad LZ4 match")
        start = len(out) - offset
        for k in range(length):
            out.append(out[start + k])


# ---------------------------------------------------------------- body and values

def days_to_date(days):
    z = days + 10957 + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if month <= 2 else 0), month, day


def date_text(days):
    year, month, day = days_to_date(days)
    shown = year if year > 0 else 1 - year
    return f"{shown:04d}-{month:02d}-{day:02d}", year <= 0


def time_text(micros):
    seconds, fraction = divmod(micros, 1_000_000)
    text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if fraction:
        text += "." + f"{fraction:06d}".rstrip("0")
    return text


def timestamp_text(micros, zone):
    if micros == 2 ** 63 - 1:
        return "infinity"
    if micros == -2 ** 63:
        return "-infinity"
    days, tod = divmod(micros, 86_400_000_000)
    date, bc = date_text(days)
    return date + " " + time_text(tod) + ("+00" if zone else "") + (" BC" if bc else "")


def float_text(x):
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    return repr(x)


def read_value(r):
    tag = r.u(1, "value tag")
    if tag == 0:
        return None
    if tag == 1:
        return {"unchanged": True}
    if tag in (2, 3):
        return {"type": "bool", "value": tag == 3}
    if tag == 4:
        return {"type": "int2", "value": r.i(2, "int2")}
    if tag == 5:
        return {"type": "int4", "value": r.i(4, "int4")}
    if tag == 6:
        return {"type": "int8", "value": str(r.i(8, "int8"))}
    if tag == 7:
        return {"type": "float4", "value": float_text(struct.unpack(">f", r.take(4, "float4"))[0]), "bits": r.data[r.pos - 4:r.pos]}
    if tag == 8:
        return {"type": "float8", "value": float_text(struct.unpack(">d", r.take(8, "float8"))[0]), "bits": r.data[r.pos - 8:r.pos]}
    if tag == 9:
        return {"type": "numeric", "value": r.vtext("numeric")}
    if tag == 10:
        return {"type": "text", "value": r.vtext("text")}
    if tag == 11:
        return {"type": "bytea", "value": r.vblob("bytea").hex()}
    if tag == 12:
        days = r.i(4, "date")
        if days == 2 ** 31 - 1:
            return {"type": "date", "value": "infinity"}
        if days == -2 ** 31:
            return {"type": "date", "value": "-infinity"}
        if not -2451545 <= days <= 2145031948:
            raise BatchError("invalid_record", "date out of range")
        text, bc = date_text(days)
        return {"type": "date", "value": text + (" BC" if bc else "")}
    if tag == 13:
        micros = r.i(8, "time")
        if not 0 <= micros <= 86_400_000_000:
            raise BatchError("invalid_record", "time out of range")
        return {"type": "time", "value": time_text(micros)}
    if tag in (14, 15):
        micros = r.i(8, "timestamp")
        if micros not in (2 ** 63 - 1, -2 ** 63) and not -211813488000000000 <= micros <= 9223371331199999999:
            raise BatchError("invalid_record", "timestamp out of range")
        return {"type": "timestamp" if tag == 14 else "timestamptz", "value": timestamp_text(micros, tag == 15)}
    if tag == 16:
        h = r.take(16, "uuid").hex()
        return {"type": "uuid", "value": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"}
    if tag == 17:
        return {"type": "json", "value": r.vtext("json")}
    if tag == 18:
        return {"type": "jsonb", "value": r.vtext("jsonb")}
    if tag == 19:
        name = r.text(1, "type name")
        return {"type": "other", "type_name": name, "value": r.vtext("other")}
    raise BatchError("invalid_record", f"unknown value tag {tag}")


def read_records(h, body):
    r = Reader(body, on_short="invalid_record")
    schemas, records, last = [], [], None
    while r.pos < len(body):
        tag = r.u(1, "entry tag")
        if tag == 0:
            resource, keys, values = r.u(2, "schema"), r.u(2, "schema"), r.u(2, "schema")
            if resource >= len(h["resources"]) or keys + values > LIMITS["columns"]:
                raise BatchError("invalid_record", "bad schema")
            names = [r.text(2, "column name") for _ in range(keys + values)]
            if len(set(names)) != len(names) or not all(1 <= len(n.encode()) <= 255 for n in names):
                raise BatchError("invalid_record", "bad column names")
            schemas.append((resource, names[:keys], names[keys:]))
            continue
        if tag not in OPS:
            raise BatchError("invalid_record", f"unknown entry tag {tag}")
        if len(records) >= h["record_count"]:
            raise BatchError("corrupt_body", "more records than record_count")
        op, flags, schema_id = OPS[tag], r.u(1, "flags"), r.u(2, "schema")
        if flags > 3 or (flags & 1 and op != "update") or schema_id >= len(schemas):
            raise BatchError("invalid_record", "bad flags or schema")
        resource, key_names, value_names = schemas[schema_id]
        if flags & 2:
            if last is None or last[1] == 0xFFFFFFFF:
                raise BatchError("invalid_record", "follows a position that does not exist")
            position = (last[0], last[1] + 1)
        else:
            position = (r.u(8, "commit"), r.u(4, "ordinal"))
        if last is not None and position <= last:
            raise BatchError("invalid_record", "positions must increase")
        if not records and position != h["first_position"]:
            raise BatchError("invalid_record", "first position differs from header")
        if len(records) + 1 == h["record_count"] and position != h["last_position"]:
            raise BatchError("invalid_record", "last position differs from header")
        record = {"op": op, "resource": h["resources"][resource],
                  "position": {"commit": position[0], "ordinal": position[1]}}
        if op != "truncate":
            record["key"] = {n: read_value(r) for n in key_names}
        if op in ("insert", "update"):
            record["values"] = {n: read_value(r) for n in value_names}
        if flags & 1:
            record["old_key"] = {n: read_value(r) for n in key_names}
        for group in ("key", "old_key"):
            if any(v is None or "unchanged" in v for v in record.get(group, {}).values()):
                raise BatchError("invalid_record", "key is NULL or unchanged")
        if op == "insert" and any(v is not None and "unchanged" in v for v in record["values"].values()):
            raise BatchError("invalid_record", "insert with unchanged column")
        records.append(record)
        last = position
    if len(records) != h["record_count"]:
        raise BatchError("corrupt_body", "record count differs from header")
    return records


def header_json(h):
    out = {
        "format_version": 1, "node_id": h["node_id"], "node_epoch": str(h["node_epoch"]), "sequence": str(h["sequence"]),
        "kind": KINDS[h["kind"]], "position_type": POSITION_TYPES[h["position_type"]],
        "first_position": {"commit": h["first_position"][0], "ordinal": h["first_position"][1]},
        "last_position": {"commit": h["last_position"][0], "ordinal": h["last_position"][1]},
        "complete_through": h["complete_through"], "created_at_us": h["created_at"], "record_count": h["record_count"],
        "resources": h["resources"], "compression": "lz4-frame", "uncompressed_length": h["uncompressed_length"],
        "compressed_length": h["compressed_length"], "digest_algorithm": DIGESTS[h["digest_algorithm"]],
        "body_digest": h["body_digest"].hex(), "signature_algorithm": SIGNATURES[h["signature_algorithm"]],
        "key_id": h["key_id"].hex(),
    }
    p = h["provenance"]
    if p:
        out["provenance"] = {
            "origin_node": p["origin_node"], "origin_epoch": str(p["origin_epoch"]), "origin_sequence": str(p["origin_sequence"]),
            "origin_digest_algorithm": DIGESTS[p["origin_digest_algorithm"]], "origin_digest": p["origin_digest"].hex(),
            "origin_signature_algorithm": SIGNATURES[p["origin_signature_algorithm"]], "origin_key_id": p["origin_key_id"].hex(),
            "origin_signature": p["origin_signature"].hex()}
    out["extensions"] = [{"type": t, "critical": c, "data": d.hex()} for t, c, d in h["extensions"]]
    return out


def read_batch(data, key):
    h, signed, signature, body = parse(data)
    verify(h, signed, signature, body, key)
    records = read_records(h, lz4_frame_decompress(body, h["uncompressed_length"]))
    return h, records


# ---------------------------------------------------------------- comparison with the vectors

def float_bits(value, type_name):
    x = float(value)
    return struct.pack(">f", x) if type_name == "float4" else struct.pack(">d", x)


def same(ours, theirs, path="$"):
    """Compares our JSON form with the recorded one; floats by bit pattern."""
    if isinstance(ours, dict) and "bits" in ours:
        expected = float_bits(theirs["value"], theirs["type"]) if isinstance(theirs, dict) else None
        if ours["type"] != theirs.get("type") or ours["bits"] != expected:
            raise AssertionError(f"{path}: {ours['value']} differs from {theirs}")
        return
    if isinstance(ours, dict) and isinstance(theirs, dict):
        if list(ours) != list(theirs):
            raise AssertionError(f"{path}: keys {list(ours)} differ from {list(theirs)}")
        for k in ours:
            same(ours[k], theirs[k], f"{path}.{k}")
    elif isinstance(ours, list) and isinstance(theirs, list):
        if len(ours) != len(theirs):
            raise AssertionError(f"{path}: {len(ours)} items, expected {len(theirs)}")
        for index, (a, b) in enumerate(zip(ours, theirs)):
            same(a, b, f"{path}[{index}]")
    elif ours != theirs or type(ours) is not type(theirs):
        raise AssertionError(f"{path}: {ours!r} differs from {theirs!r}")


def check(manifest_path):
    directory = os.path.dirname(os.path.abspath(manifest_path))
    with open(manifest_path, encoding="utf-8") as f:
        vectors = json.load(f)["vectors"]

    def key_of(name):
        with open(os.path.join(directory, name), encoding="ascii") as f:
            return load_public_key(f.read())

    failures = 0
    for vector in vectors:
        with open(os.path.join(directory, vector["file"]), "rb") as f:
            data = f.read()
        try:
            h, records = read_batch(data, key_of(vector["key"]))
            outcome = "valid"
            if vector["expect"] == "valid":
                with open(os.path.join(directory, vector["file"].replace(".gvxb", ".json")), encoding="utf-8") as f:
                    expected = json.load(f)
                same({"header": header_json(h), "records": records}, expected)
                if h["provenance"]:
                    origin = [v for v in vectors if v["expect"] == "valid" and v["file"].startswith("sm2")][0]
                    verify_origin(h, key_of(origin["key"]))
        except BatchError as error:
            outcome = error.code
        except AssertionError as error:
            outcome = f"mismatch ({error})"
        ok = outcome == vector["expect"]
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {vector['file']} with {vector['key']}: {outcome}")
    if failures:
        print(f"{failures} of {len(vectors)} vectors disagree")
        return 1
    print(f"{len(vectors)} vectors agree")
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "check":
        return check(argv[2])
    if len(argv) == 4 and argv[1] == "inspect":
        with open(argv[2], "rb") as f, open(argv[3], encoding="ascii") as k:
            h, records = read_batch(f.read(), load_public_key(k.read()))
        for record in records:
            for group in ("key", "values", "old_key"):
                for value in record.get(group, {}).values():
                    if isinstance(value, dict):
                        value.pop("bits", None)
        print(json.dumps({"header": header_json(h), "records": records}, ensure_ascii=False, indent=1))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
