#!/usr/bin/env python3
"""Uploads through bootsrv's control API, end to end, as `imgtool push` will
do them: versions of a source store (SRC_STORE) are declared with their block
digests, sent as VHD files (`imgtool export --diff-from`), and committed into
the server's store (DST_STORE). Each scenario checks the answer and that the
server's store holds exactly what it should. Run by api.sh, which starts the
server; prints "ok: ..." per scenario and exits non-zero at the first
failure."""
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

BLOCK = 2 << 20
HOST = "127.0.0.1"
PORT = int(os.environ["API_PORT"])
TOKEN = os.environ["API_TOKEN"]
IMGTOOL = os.environ["IMGTOOL"]
SRC = os.environ["SRC_STORE"]
SRC2 = os.environ["SRC2_STORE"]
DST = os.environ["DST_STORE"]
WORK = os.environ["WORK"]
UPLOAD_DIR = os.environ["UPLOAD_DIR"]


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def ok(message):
    print("ok: " + message, flush=True)


def call(method, path, body=None, headers=None, token=TOKEN):
    conn = http.client.HTTPConnection(HOST, PORT, timeout=120)
    h = {"Authorization": "Bearer " + token} if token else {}
    h.update(headers or {})
    data = body
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    text = r.read()
    conn.close()
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        fail(f"{method} {path}: answer is not JSON: {text[:300]!r}")
    return r.status, parsed


def expect(want, answer, what):
    status, body = answer
    if status != want:
        fail(f"{what}: status {status}, expected {want}: {json.dumps(body)}")
    if status >= 400:
        if not (isinstance(body, dict) and body.get("error", {}).get("status") == status and body["error"].get("message")):
            fail(f"{what}: error body is not {{error:{{status,message}}}}: {body}")
    return body


def message_of(answer):
    return answer[1]["error"]["message"]


def imgtool(store, *args):
    env = dict(os.environ, BOOTFLEET_STORE=store)
    r = subprocess.run([IMGTOOL, *args], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"imgtool {' '.join(args)} (store {store}) exited {r.returncode}: {r.stdout} {r.stderr}")
    return r.stdout


def versions(store, image):
    return {v["number"]: v for v in json.loads(imgtool(store, "versions", image, "--json"))}


def server_versions(image):
    status, body = call("GET", f"/api/v1/images/{image}/versions")
    return {} if status == 404 else {v["number"]: v for v in body["versions"]}


def declare(store, image, n, artifacts=()):
    """The declaration of IMAGE@N of `store` and the VHD file to upload."""
    vs = versions(store, image)
    v = vs[n]
    raw = f"{WORK}/{os.path.basename(store)}-{image}-{n}.raw"
    imgtool(store, "export", f"{image}@{n}", raw, "--to", "raw", "--force")
    size = v["virtual_size"]
    blocks, chain = [], []
    with open(raw, "rb") as f:
        for b in range((size + BLOCK - 1) // BLOCK):
            data = f.read(BLOCK)
            d = hashlib.sha256(data).digest()
            chain.append(d)
            if data.count(0) != len(data):
                blocks.append([b, d.hex()])
    os.unlink(raw)
    disk = hashlib.sha256(b"".join(chain)).hexdigest()
    if disk != v["disk_digest"]:
        fail(f"the test's disk digest of {image}@{n} ({disk}) is not the store's ({v['disk_digest']})")
    path = f"{WORK}/{os.path.basename(store)}-{image}-{n}.vhd"
    if n == 1:
        imgtool(store, "export", f"{image}@1", path, "--force")
    else:
        imgtool(store, "export", f"{image}@{n}", "-o", path, "--diff-from", str(n - 1), "--force")
    arts = []
    for name, content in artifacts:
        arts.append({"name": name, "size": len(content), "sha256": hashlib.sha256(content).hexdigest()})
    return {
        "version": n,
        "parent": n - 1 if n > 1 else None,
        "parent_digest": vs[n - 1]["disk_digest"] if n > 1 else None,
        "size": size,
        "file_size": os.path.getsize(path),
        "disk_digest": disk,
        "block_digests": blocks,
        "artifacts": arts,
        "message": f"pushed {image}@{n}",
        "created_by": "tester@ci",
        "source": f"push of {image}@{n}",
        "recipe": None,
        "recipe_hash": None,
    }, path


def put_disk(upload, path, offset, length):
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    return call("PUT", f"/api/v1/uploads/{upload}/disk?offset={offset}", body=data,
                headers={"Content-Type": "application/octet-stream"})


def send_all(upload, path, artifacts=(), piece=3 << 20):
    size = os.path.getsize(path)
    offset = 0
    while offset < size:
        n = min(piece, size - offset)
        body = expect(200, put_disk(upload, path, offset, n), f"PUT disk at {offset}")
        offset += n
        if body["received"] != offset:
            fail(f"after PUT at {offset - n}: received {body['received']}, expected {offset}")
    for name, content in artifacts:
        expect(200, call("PUT", f"/api/v1/uploads/{upload}/artifacts/{name}", body=content), f"PUT artifact {name}")


def cut_put(upload, path, offset, declared, sent):
    """A PUT that declares `declared` bytes, sends `sent`, and hangs up."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(sent)
    s = socket.create_connection((HOST, PORT))
    s.sendall((f"PUT /api/v1/uploads/{upload}/disk?offset={offset} HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {TOKEN}\r\nContent-Length: {declared}\r\n\r\n").encode() + data)
    time.sleep(0.3)
    s.close()


def head_only(method, path, length):
    """Sends only the head of a request with a body of `length`; the answer."""
    s = socket.create_connection((HOST, PORT), timeout=30)
    s.sendall((f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
               f"Content-Length: {length}\r\n\r\n").encode())
    out = b""
    while b"\r\n\r\n" not in out or len(out.split(b"\r\n\r\n", 1)[1]) < int(
            [h for h in out.split(b"\r\n") if h.lower().startswith(b"content-length:")][0].split(b":")[1]):
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    head, body = out.split(b"\r\n\r\n", 1)
    return int(head.split(b" ")[1]), json.loads(body)


def flip_data_byte(path):
    """Flips one byte inside a sector the differencing file marks as its own."""
    with open(path, "r+b") as f:
        f.seek(512 + 16)
        bat_offset = int.from_bytes(f.read(8), "big")
        f.seek(512 + 28)
        entries = int.from_bytes(f.read(4), "big")
        f.seek(512 + 32)
        block_size = int.from_bytes(f.read(4), "big")
        f.seek(bat_offset)
        bat = f.read(4 * entries)
        bitmap_bytes = ((block_size // 512 + 7) // 8 + 511) // 512 * 512
        for i in range(entries):
            sector = int.from_bytes(bat[4 * i:4 * i + 4], "big")
            if sector == 0xFFFFFFFF:
                continue
            f.seek(sector * 512)
            bitmap = f.read(bitmap_bytes)
            for s in range(block_size // 512):
                if bitmap[s >> 3] & (0x80 >> (s & 7)):
                    at = sector * 512 + bitmap_bytes + s * 512 + 100
                    f.seek(at)
                    b = f.read(1)
                    f.seek(at)
                    f.write(bytes([b[0] ^ 0xFF]))
                    return i
    fail(f"{path} holds no sector to flip")


def uploads_on_disk():
    return sorted(os.listdir(UPLOAD_DIR)) if os.path.isdir(UPLOAD_DIR) else []


KERNEL = os.urandom(300_000)

# --- 507: more than the disks hold, refused before anything is written ---
decl2, file2 = declare(SRC, "lab", 2, [("vmlinuz", KERNEL)])
huge = dict(decl2, file_size=1 << 50)
before = uploads_on_disk()
a = call("POST", "/api/v1/images/lab/uploads", huge)
expect(507, a, "a 1 PiB upload")
msg = message_of(a)
if "lab@2" not in msg or "free" not in msg:
    fail(f"507 message does not name the version and the free space: {msg}")
if uploads_on_disk() != before:
    fail(f"a refused upload left files: {uploads_on_disk()}")
ok("507 before any byte when the declared file does not fit: " + msg)

# --- 507 also counts what the uploads already open will still write ---
probe = UPLOAD_DIR if os.path.isdir(UPLOAD_DIR) else os.path.dirname(UPLOAD_DIR)
st = os.statvfs(probe)
free = st.f_bavail * st.f_frsize
same_fs = os.stat(probe).st_dev == os.stat(DST).st_dev
part = int(free * (0.3 if same_fs else 0.6))  # one fits (with its import), two do not
first = expect(201, call("POST", "/api/v1/images/lab/uploads", dict(decl2, file_size=part)), "an upload of a third of the room")
second = call("POST", "/api/v1/images/lab/uploads", dict(decl2, file_size=part, disk_digest="ab" * 32))
expect(507, second, "a second upload that fits only if the first is forgotten")
if "promised to 1 open upload" not in message_of(second):
    fail(f"507 message does not name the space promised to the open upload: {message_of(second)}")
expect(200, call("DELETE", f"/api/v1/uploads/{first['upload']}"), "abort the first")
expect(201, call("POST", "/api/v1/images/lab/uploads", dict(decl2, file_size=part, disk_digest="ab" * 32)),
       "the second, once the first is gone")
for u in uploads_on_disk():
    call("DELETE", f"/api/v1/uploads/{u}")
if uploads_on_disk():
    fail(f"aborted uploads left files: {uploads_on_disk()}")
ok("507 counts the space open uploads will still need: " + message_of(second))

# --- declarations that do not fit the server's store ---
a = call("POST", "/api/v1/images/lab/uploads", dict(decl2, parent_digest="0" * 64))
expect(409, a, "wrong parent digest")
if decl2["parent_digest"] not in message_of(a) or "0" * 64 not in message_of(a):
    fail(f"wrong parent digest: message does not name both digests: {message_of(a)}")
ok("a wrong parent digest: 409 naming both: " + message_of(a))

decl4 = dict(decl2, version=4, parent=3)
a = call("POST", "/api/v1/images/lab/uploads", decl4)
expect(409, a, "missing parent")
if "server lacks lab@3; push it first" not in message_of(a):
    fail(f"missing parent message: {message_of(a)}")
ok("a missing parent: 409 " + message_of(a))

a = call("POST", "/api/v1/images/lab/uploads", dict(decl2, block_digests=[[1 << 30, "0" * 64]]))
expect(400, a, "block outside the disk")
a = call("POST", "/api/v1/images/lab/uploads", {"version": "two"})
expect(400, a, "version not a number")
if "version" not in message_of(a):
    fail(f"400 does not name the field: {message_of(a)}")
a = call("POST", "/api/v1/images/lab/uploads", b"{not json", headers={"Content-Type": "application/json"})
expect(400, a, "not JSON")
ok("malformed declarations: 400 naming the field")

# --- lab@2: resume after a cut connection, artifacts, commit ---
created = expect(201, call("POST", "/api/v1/images/lab/uploads", decl2), "create lab@2")
upload = created["upload"]
if created["received"] != 0 or created["artifacts_received"] != []:
    fail(f"a new upload is not empty: {created}")
again = expect(200, call("POST", "/api/v1/images/lab/uploads", decl2), "create lab@2 again")
if again["upload"] != upload:
    fail(f"the same declaration while open gave another upload: {again} vs {created}")
ok(f"create: 201 with an id; the same declaration again resumes it (200, same id {upload})")

size = decl2["file_size"]
half = size // 2
expect(200, put_disk(upload, file2, 0, half), "first half")
cut_put(upload, file2, half, size - half, 100_000)
time.sleep(0.3)
state = expect(200, call("GET", f"/api/v1/uploads/{upload}"), "GET after the cut")
if not (half <= state["received"] <= half + 100_000):
    fail(f"after a cut connection received is {state['received']}, expected between {half} and {half + 100_000}")
for key in ("upload", "image", "version", "received", "file_size", "artifacts_received", "expires_at"):
    if key not in state:
        fail(f"GET upload lacks '{key}': {state}")
a = put_disk(upload, file2, 0, 10)
expect(409, a, "a wrong offset")
if a[1]["error"].get("received") != state["received"] or f"offset={state['received']}" not in message_of(a):
    fail(f"409 on a wrong offset does not say where to go on: {a[1]}")
# One byte too many is refused from the head alone, before the body is read
# (so the body is not sent here: the server answers and closes).
a = head_only("PUT", f"/api/v1/uploads/{upload}/disk?offset={state['received']}", size - state["received"] + 1)
expect(400, a, "past file_size")
early = call("POST", f"/api/v1/uploads/{upload}/commit")
expect(409, early, "commit before everything arrived")
send_from = state["received"]
expect(200, put_disk(upload, file2, send_from, size - send_from), "the rest")
a = call("PUT", f"/api/v1/uploads/{upload}/artifacts/vmlinuz", body=KERNEL[:-1] + bytes([KERNEL[-1] ^ 1]))  # never the same bytes (os.urandom may end in "?")
expect(422, a, "artifact with a wrong sha256")
a = call("PUT", f"/api/v1/uploads/{upload}/artifacts/initrd.img", body=b"x")
expect(404, a, "undeclared artifact")
expect(200, call("PUT", f"/api/v1/uploads/{upload}/artifacts/vmlinuz", body=KERNEL), "artifact")
state = expect(200, call("GET", f"/api/v1/uploads/{upload}"), "GET before commit")
if state["received"] != size or state["artifacts_received"] != ["vmlinuz"]:
    fail(f"before commit: {state}")
done = expect(201, call("POST", f"/api/v1/uploads/{upload}/commit"), "commit lab@2")
v = done["version"]
if v["number"] != 2 or v["disk_digest"] != decl2["disk_digest"] or v["parent"] != 1:
    fail(f"committed version: {v}")
if v["message"] != "pushed lab@2" or v["created_by"] != "tester@ci" or v["source"] != "push of lab@2":
    fail(f"committed version lost the declared fields: {v}")
if v["artifacts"] != [{"name": "vmlinuz", "size": len(KERNEL), "sha256": hashlib.sha256(KERNEL).hexdigest()}]:
    fail(f"committed artifacts: {v['artifacts']}")
expect(404, call("GET", f"/api/v1/uploads/{upload}"), "the upload after commit")
if uploads_on_disk():
    fail(f"a committed upload left files: {uploads_on_disk()}")
ok("lab@2: half, a cut connection, resume from GET's received, 409 wrong offset, 400 past the end, "
   "409 early commit, artifact checked at once, commit 201 with the declared digest and fields")

again = expect(200, call("POST", "/api/v1/images/lab/uploads", decl2), "declare lab@2 once more")
if again.get("exists") is not True or again["version"]["disk_digest"] != decl2["disk_digest"]:
    fail(f"declaring a version the server has: {again}")
other = dict(decl2, disk_digest="ab" * 32)
a = call("POST", "/api/v1/images/lab/uploads", other)
expect(409, a, "lab@2 with another digest")
if decl2["disk_digest"] not in message_of(a) or "ab" * 32 not in message_of(a):
    fail(f"409 on another digest does not name both: {message_of(a)}")
ok("lab@2 again: 200 exists; with another digest: 409 naming both")

# --- lab@3 with a flipped byte in the stream: 422, nothing stored ---
decl3, file3 = declare(SRC, "lab", 3)
bad = file3 + ".bad"
shutil.copy(file3, bad)
block = flip_data_byte(bad)
created = expect(201, call("POST", "/api/v1/images/lab/uploads", decl3), "create lab@3")
send_all(created["upload"], bad)
a = call("POST", f"/api/v1/uploads/{created['upload']}/commit")
expect(422, a, "commit of a flipped byte")
if "block" not in message_of(a) or "declared" not in message_of(a):
    fail(f"422 does not name the block: {message_of(a)}")
expect(404, call("GET", f"/api/v1/uploads/{created['upload']}"), "a refused upload")
if 3 in server_versions("lab"):
    fail("a refused upload was stored")
if uploads_on_disk():
    fail(f"a refused upload left files: {uploads_on_disk()}")
ok("a flipped byte: 422 (" + message_of(a) + "), discarded, nothing stored")

# --- two racing commits of lab@3 with different content: one wins ---
decl3b, file3b = declare(SRC2, "lab", 3)
if decl3b["disk_digest"] == decl3["disk_digest"]:
    fail("the second source's lab@3 is not different")
u1 = expect(201, call("POST", "/api/v1/images/lab/uploads", decl3), "create lab@3 (a)")["upload"]
u2 = expect(201, call("POST", "/api/v1/images/lab/uploads", decl3b), "create lab@3 (b)")["upload"]
send_all(u1, file3)
send_all(u2, file3b)
results = {}


def commit(name, upload):
    results[name] = call("POST", f"/api/v1/uploads/{upload}/commit")


threads = [threading.Thread(target=commit, args=(n, u)) for n, u in (("a", u1), ("b", u2))]
for t in threads:
    t.start()
for t in threads:
    t.join()
statuses = sorted(r[0] for r in results.values())
if statuses != [201, 409]:
    fail(f"racing commits: {results}")
winner = "a" if results["a"][0] == 201 else "b"
want = (decl3 if winner == "a" else decl3b)["disk_digest"]
vs = server_versions("lab")
if sorted(vs) != [1, 2, 3] or vs[3]["disk_digest"] != want:
    fail(f"after racing commits the server has {sorted(vs)} (lab@3 {vs.get(3, {}).get('disk_digest')}), expected 1-3 with {want}")
loser = results["b" if winner == "a" else "a"]
ok("two racing commits of lab@3: one 201, one 409 (" + message_of(loser) + "); no lab@4")

# --- version 1 of a new image: a dynamic VHD ---
decl1, file1 = declare(SRC, "lab", 1)
created = expect(201, call("POST", "/api/v1/images/fresh/uploads", decl1), "create fresh@1")
send_all(created["upload"], file1, piece=5 << 20)
v = expect(201, call("POST", f"/api/v1/uploads/{created['upload']}/commit"), "commit fresh@1")["version"]
if v["number"] != 1 or v["disk_digest"] != decl1["disk_digest"] or v["parent"] is not None:
    fail(f"fresh@1: {v}")
ok("version 1 of a new image from a dynamic VHD: 201 with the same disk digest")

# --- abort ---
decl2f, file2f = declare(SRC, "lab", 2)
created = expect(201, call("POST", "/api/v1/images/fresh/uploads", decl2f), "create fresh@2")
expect(200, put_disk(created["upload"], file2f, 0, 1000), "some bytes")
expect(200, call("DELETE", f"/api/v1/uploads/{created['upload']}"), "abort")
a = call("GET", f"/api/v1/uploads/{created['upload']}")
expect(404, a, "an aborted upload")
if "expired or unknown; start again" not in message_of(a):
    fail(f"404 message: {message_of(a)}")
if uploads_on_disk():
    fail(f"an aborted upload left files: {uploads_on_disk()}")
ok("DELETE aborts: 404 'expired or unknown; start again', files gone")
