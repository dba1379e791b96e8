#!/usr/bin/env python3
"""Generate the signature and canonical-JSON fixtures used by formats/tests/*.rs.

Run once (the outputs are committed); needs `cryptography`, `securesystemslib==1.4.0` and
`tuf==7.0.0`, e.g. from the conformance venv: /tmp/tufconf-venv/bin/python generate.py
Keys are random: rerunning changes every file, which is fine as long as all are committed.
"""
import json
from datetime import datetime, timezone

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Root
from tuf.api.serialization.json import JSONSerializer

MESSAGE = b'{"_type":"test","msg":"sign me"}'
OTHER = b'{"_type":"test","msg":"not me"}'


def pem(pub):
    return pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def vector(keytype, scheme, public, sig):
    return {
        "keytype": keytype,
        "scheme": scheme,
        "public": public,
        "message": MESSAGE.decode(),
        "other_message": OTHER.decode(),
        "signature": sig.hex(),
    }


ed = ed25519.Ed25519PrivateKey.generate()
ed_pub = ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
ec_key = ec.generate_private_key(ec.SECP256R1())
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

vectors = [
    vector("ed25519", "ed25519", ed_pub.hex(), ed.sign(MESSAGE)),
    vector(
        "ecdsa",
        "ecdsa-sha2-nistp256",
        pem(ec_key.public_key()),
        ec_key.sign(MESSAGE, ec.ECDSA(hashes.SHA256())),
    ),
    vector(
        "rsa",
        "rsassa-pss-sha256",
        pem(rsa_key.public_key()),
        rsa_key.sign(
            MESSAGE,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        ),
    ),
]
with open("signature_vectors.json", "w") as f:
    json.dump(vectors, f, indent=2)

# A root signed by python-tuf with one key of each type (threshold 3), with an unknown field
# and non-ASCII text in `signed`: verifying it checks canonical JSON and all three schemes.
signers = [CryptoSigner(k) for k in (ed, ec_key, rsa_key)]
root = Root(expires=datetime(2040, 1, 1, tzinfo=timezone.utc), consistent_snapshot=True)
for role in ("root", "timestamp", "snapshot", "targets"):
    for s in signers:
        root.add_key(s.public_key, role)
    root.roles[role].threshold = 3
root.unrecognized_fields["x-vendor-note"] = "Grüße, \"quoted\" \\ back"
md = Metadata(root)
for s in signers:
    md.sign(s, append=True)
with open("root_three_key_types.json", "wb") as f:
    f.write(md.to_bytes(JSONSerializer(compact=False)))

# Canonical JSON vectors: input document -> securesystemslib's canonical encoding.
inputs = [
    {"b": 1, "a": 2, "c": {"z": [], "y": {}}},
    {"s": "quote \" backslash \\ newline \n tab \t"},
    {"unicode": "é ü 日本 \u2028"},
    {"list": [3, 1, 2], "bools": [True, False, None]},
    {"neg": -5, "big": 9007199254740993, "zero": 0},
    {"ctl": "\u0001\u001f"},
    {"A": 1, "a": 2, "_": 3, "é": 4},
    # Not NFC: decomposed "e" + U+0301, U+212B ANGSTROM SIGN. Written as is, not normalised.
    {"name": "e\u0301", "\u212b": "A\u030a", "nfc": "\u00e9"},
]
with open("canonical_vectors.json", "w", encoding="utf-8") as f:
    json.dump(
        [{"input": i, "canonical": encode_canonical(i)} for i in inputs],
        f,
        indent=2,
        ensure_ascii=False,
    )
