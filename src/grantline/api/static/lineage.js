/*
 * Grantline lineage page: the browser checks every record itself (docs/lineage-page.md).
 *
 * For each record row: the Ed25519 signature of its exact line (docs/evidence-format.md
 * section 7) by a log key of the JWKS (section 4); its RFC 6962 inclusion proof from the
 * leaf SHA-256(0x00 || line) up to the root of the checkpoint note (section 9.1); and, where
 * two records are neighbours in the log, the hash chain between them (section 8). The
 * checkpoint note's signature is checked with the C2SP verifier key the broker publishes.
 * Then display.js recomputes every fact the row shows from the verified record body and
 * compares it with the page, and writes the row's details from the verified bytes.
 *
 * Everything read from the page or the network is data: results are written with
 * textContent and data attributes only, never as HTML.
 */
(function () {
  "use strict";

  const encoder = new TextEncoder();
  const RECORD_DOMAIN = encoder.encode("grantline/record/v1\0");
  const CHAIN_DOMAIN = encoder.encode("grantline/chain/v1\0");
  const SIG_SUFFIX = /^,"sig":"([A-Za-z0-9_-]{86})"\}$/;
  const SUFFIX_BYTES = 96; // ,"sig":" + 86 characters + "}
  const DASH = "\u2014 ";

  // -- bytes and encodings ------------------------------------------------------------------

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  function equal(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i += 1) diff |= a[i] ^ b[i];
    return diff === 0;
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  /** Standard base64 (with padding), strictly: anything else throws. */
  function b64decode(text) {
    if (typeof text !== "string" || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
      throw new Error("not base64");
    }
    const binary = atob(text);
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    if (b64encode(bytes) !== text) throw new Error("not canonical base64");
    return bytes;
  }

  function b64encode(bytes) {
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary);
  }

  /** base64url without padding, in its one canonical spelling (section 2). */
  function b64urlDecode(text) {
    if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
      throw new Error("not base64url");
    }
    const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "==".slice(0, (4 - (text.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    if (b64encode(bytes).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_") !== text) {
      throw new Error("not canonical base64url");
    }
    return bytes;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

  // -- keys (section 4) -----------------------------------------------------------------------

  /** The trusted log keys of a JWKS: Map of kid -> 32-byte Ed25519 public key. */
  function trustedKeys(jwks) {
    if (jwks === null || typeof jwks !== "object" || !Array.isArray(jwks.keys)) {
      throw new Error("the JWKS has no keys array");
    }
    const keys = new Map();
    for (const jwk of jwks.keys) {
      if (jwk === null || typeof jwk !== "object" || jwk.kty !== "OKP" || jwk.crv !== "Ed25519") continue;
      if (!["sig", undefined].includes(jwk.use) || !["EdDSA", undefined].includes(jwk.alg)) continue;
      if (!["log", undefined].includes(jwk.grantline_purpose)) continue;
      const raw = b64urlDecode(jwk.x);
      if (raw.length !== 32) throw new Error("a JWKS key is not 32 bytes");
      if (typeof jwk.kid !== "string" || keys.has(jwk.kid)) throw new Error("the JWKS names two keys alike");
      keys.set(jwk.kid, raw);
    }
    return keys;
  }

  async function ed25519Verify(publicKey, signature, message) {
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
  }

  // -- records (sections 7 and 8) -------------------------------------------------------------

  /** The signed bytes and signature of a line: its body up to ,"sig":"…" then "}". */
  function splitLine(line) {
    if (line.length <= SUFFIX_BYTES || line[0] !== 0x7b) throw new Error("not a signed line");
    const suffix = String.fromCharCode(...line.subarray(line.length - SUFFIX_BYTES));
    const match = SIG_SUFFIX.exec(suffix);
    if (match === null) throw new Error('the line does not end with ,"sig":"…"}');
    const signed = concat(line.subarray(0, line.length - SUFFIX_BYTES), encoder.encode("}"));
    return { signed, signature: b64urlDecode(match[1]) };
  }

  /**
   * Check one record line: { ok, reason, body }. ``expected`` holds what the page shows for
   * it (seq, event, at, request_id), which must be what was signed.
   */
  async function verifyRecord(line, keys, expected) {
    let parts;
    let body;
    try {
      parts = splitLine(line);
      body = JSON.parse(strictUtf8.decode(parts.signed));
    } catch (error) {
      return { ok: false, reason: `malformed line: ${error.message}`, body: null };
    }
    if (body === null || typeof body !== "object" || Array.isArray(body) || body.event === "checkpoint") {
      return { ok: false, reason: "not a record", body: null };
    }
    const key = keys.get(body.kid);
    if (key === undefined) return { ok: false, reason: `no trusted log key ${String(body.kid)}`, body };
    if (!(await ed25519Verify(key, parts.signature, concat(RECORD_DOMAIN, parts.signed)))) {
      return { ok: false, reason: "the signature does not verify", body };
    }
    for (const [name, value] of Object.entries(expected || {})) {
      if (String(body[name]) !== String(value)) {
        return { ok: false, reason: `the page shows ${name} ${value}, the record says ${body[name]}`, body };
      }
    }
    return { ok: true, reason: "", body };
  }

  async function chainHash(line) {
    return `sha256:${hex(await sha256(concat(CHAIN_DOMAIN, line)))}`;
  }

  // -- Merkle tree (RFC 6962 / RFC 9162) ------------------------------------------------------

  async function leafHash(line) {
    return sha256(concat(Uint8Array.of(0), line));
  }

  async function nodeHash(left, right) {
    return sha256(concat(Uint8Array.of(1), left, right));
  }

  /** The root an inclusion proof leads to (RFC 9162 2.1.3.2); throws if the path is malformed. */
  async function rootFromInclusion(leaf, index, size, proof) {
    if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) {
      throw new Error("the leaf is not in the tree");
    }
    // Halving with Math.floor, not >>: indices may exceed 32 bits.
    let fn = index;
    let sn = size - 1;
    let r = leaf;
    for (const p of proof) {
      if (sn === 0) throw new Error("the proof is too long");
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Error("the proof is too short");
    return r;
  }

  // -- checkpoint notes (C2SP signed-note, tlog-checkpoint) -----------------------------------

  /** ``<name>+<hex key id>+<base64(0x01 || key)>``, its key id checked. */
  async function parseLogKey(text) {
    // name+id+material: the base64 material may itself hold "+", so split at the first two.
    const trimmed = text.trim();
    const first = trimmed.indexOf("+");
    const second = trimmed.indexOf("+", first + 1);
    const parts = [trimmed.slice(0, first), trimmed.slice(first + 1, second), trimmed.slice(second + 1)];
    if (first < 0 || second < 0 || !/^[^\s+]+$/.test(parts[0]) || !/^[0-9a-f]{8}$/.test(parts[1])) {
      throw new Error("malformed log key");
    }
    const material = b64decode(parts[2]);
    if (material.length !== 33 || material[0] !== 1) throw new Error("the log key is not Ed25519");
    const publicKey = material.subarray(1);
    const id = (await sha256(concat(encoder.encode(`${parts[0]}\n`), material))).subarray(0, 4);
    if (hex(id) !== parts[1]) throw new Error("the log key's id does not match it");
    return { name: parts[0], keyId: id, publicKey };
  }

  /** Verify a checkpoint note by ``key``; { origin, size, root } of what it states. */
  async function openNote(note, key) {
    if (!note.endsWith("\n") || note.length > 65536) throw new Error("not a signed note");
    const split = note.lastIndexOf("\n\n");
    if (split < 0) throw new Error("the note has no signatures");
    const text = note.slice(0, split + 1);
    let signed = false;
    for (const line of note.slice(split + 2, -1).split("\n")) {
      if (!line.startsWith(DASH)) throw new Error("malformed signature line");
      const [name, blob] = line.slice(DASH.length).split(" ");
      if (name !== key.name) continue;
      const raw = b64decode(blob || "");
      if (raw.length !== 68 || !equal(raw.subarray(0, 4), key.keyId)) continue;
      if (!(await ed25519Verify(key.publicKey, raw.subarray(4), encoder.encode(text)))) {
        throw new Error("the note's signature does not verify");
      }
      signed = true;
    }
    if (!signed) throw new Error("the note carries no signature by the log key");
    const [origin, size, root] = text.split("\n");
    if (origin !== key.name) throw new Error("the note is for another log");
    if (!/^(0|[1-9][0-9]*)$/.test(size) || !Number.isSafeInteger(Number(size))) {
      throw new Error("malformed tree size");
    }
    const rootBytes = b64decode(root);
    if (rootBytes.length !== 32) throw new Error("malformed root hash");
    return { origin, size: Number(size), root: rootBytes };
  }

  // -- the page -------------------------------------------------------------------------------

  const TEXT = {
    signature: { pending: "checking signature…", valid: "signature ✓", invalid: "signature ✗" },
    inclusion: { pending: "checking inclusion…", invalid: "inclusion ✗", unavailable: "no inclusion proof" },
    chain: { linked: "chained to the record before ✓", broken: "chain to the record before ✗", none: "" },
    facts: {
      match: "shown as signed ✓",
      mismatch: "shown fields differ from the signed record ✗",
      unchecked: "fields not checked",
    },
  };

  /** The facts checks of display.js, which the page loads first. */
  function display() {
    if (window.GrantlineDisplay === undefined) throw new Error("the page's display.js did not load");
    return window.GrantlineDisplay;
  }

  function mark(element, kind, state, text, title) {
    element.dataset[kind] = state;
    const badge = element.querySelector(`[data-badge="${kind}"]`);
    if (badge !== null) {
      badge.textContent = text;
      badge.className = `badge badge-${state}`;
      badge.title = title || "";
    }
  }

  async function fetchText(path) {
    const response = await fetch(path, { credentials: "omit", cache: "no-store" });
    if (!response.ok) throw new Error(`${path} answered ${response.status}`);
    return response.text();
  }

  async function loadKeys() {
    const jwks = JSON.parse(await fetchText("/.well-known/jwks.json"));
    const logKey = await parseLogKey(await fetchText("/.well-known/grantline-log-key"));
    return { keys: trustedKeys(jwks), logKey };
  }

  /** The checkpoint the page names, opened with the log key; null (badge set) if it fails. */
  async function checkCheckpoint(evidence, keys, logKey) {
    if (evidence.dataset.note === undefined) return null;
    try {
      const note = strictUtf8.decode(b64decode(evidence.dataset.note));
      const opened = await openNote(note, logKey);
      if (![...keys.values()].some((raw) => equal(raw, logKey.publicKey))) {
        throw new Error("the log key is not among the JWKS's log keys");
      }
      if (String(opened.size) !== evidence.dataset.treeSize) throw new Error("the note's size is not the page's");
      mark(evidence, "checkpoint", "valid", `size ${opened.size}, signed by ${logKey.name} ✓`);
      return opened;
    } catch (error) {
      mark(evidence, "checkpoint", "invalid", "checkpoint ✗", error.message);
      return null;
    }
  }

  async function checkInclusion(row, line, checkpoint) {
    if (row.dataset.proof === undefined || checkpoint === null) {
      const state = row.dataset.proof === undefined ? "unavailable" : "invalid";
      mark(row, "inclusion", state, TEXT.inclusion[state], "no verified checkpoint to prove inclusion in");
      return;
    }
    try {
      const proof = row.dataset.proof === "" ? [] : row.dataset.proof.split(" ").map(b64decode);
      const root = await rootFromInclusion(await leafHash(line), Number(row.dataset.seq) - 1, checkpoint.size, proof);
      if (!equal(root, checkpoint.root)) throw new Error("the proof leads to another root");
      mark(row, "inclusion", "valid", `included in checkpoint of size ${checkpoint.size} ✓`);
    } catch (error) {
      mark(row, "inclusion", "invalid", TEXT.inclusion.invalid, error.message);
    }
  }

  async function checkRow(row, keys, requestId, checkpoint) {
    let line;
    try {
      line = b64decode(row.dataset.line);
    } catch (error) {
      for (const kind of ["signature", "inclusion"]) mark(row, kind, "invalid", TEXT[kind].invalid, "the page holds no readable line");
      mark(row, "facts", "unchecked", TEXT.facts.unchecked, "the page holds no readable line");
      display().fillDetails(row, null, null);
      return { line: null, body: null, ok: false };
    }
    const expected = { seq: row.dataset.seq, event: row.dataset.event, at: row.dataset.at, request_id: requestId };
    const result = await verifyRecord(line, keys, expected);
    mark(row, "signature", result.ok ? "valid" : "invalid", TEXT.signature[result.ok ? "valid" : "invalid"], result.reason);
    display().fillDetails(row, line, result.ok ? result.body : null);
    if (result.ok) {
      const facts = display().checkFacts(row, result.body);
      mark(row, "facts", facts.ok ? "match" : "mismatch", TEXT.facts[facts.ok ? "match" : "mismatch"], facts.reason);
    } else {
      mark(row, "facts", "unchecked", TEXT.facts.unchecked, "the record did not verify: nothing to check its fields against");
    }
    await checkInclusion(row, line, checkpoint);
    return { line, body: result.body, ok: result.ok };
  }

  /** Rows must come in log order, each record once. */
  function checkOrder(rows, checked) {
    let last = 0;
    rows.forEach((row, i) => {
      const seq = checked[i].ok ? checked[i].body.seq : null;
      if (!Number.isSafeInteger(seq)) return;
      if (seq <= last) mark(row, "facts", "mismatch", TEXT.facts.mismatch, `shown after record #${last}: out of log order`);
      last = Math.max(last, seq);
    });
  }

  async function checkChain(rows, checked) {
    for (let i = 0; i < rows.length; i += 1) {
      const before = checked[i - 1];
      const here = checked[i];
      const neighbours = before && before.ok && here.ok && Number(rows[i].dataset.seq) === Number(rows[i - 1].dataset.seq) + 1;
      if (!neighbours) {
        mark(rows[i], "chain", "none", TEXT.chain.none, "the record before it in the log is not part of this lineage");
        continue;
      }
      const linked = here.body.prev === (await chainHash(before.line));
      mark(rows[i], "chain", linked ? "linked" : "broken", TEXT.chain[linked ? "linked" : "broken"]);
    }
  }

  function verdict(root, evidence, rows) {
    const all = (kind, state) => rows.every((row) => row.dataset[kind] === state);
    const heading = root.querySelector(".request-id");
    const named = heading === null || heading.textContent === evidence.dataset.requestId;
    const good = rows.length > 0 && all("signature", "valid") && all("inclusion", "valid") && all("facts", "match");
    const broken = rows.some((row) => row.dataset.chain === "broken");
    const state = good && named && !broken && evidence.dataset.checkpoint === "valid" ? "valid" : "invalid";
    let text = "some evidence did not verify ✗ (hover a badge for why)";
    if (state === "valid") {
      text = `all ${rows.length} records shown are signed by the log key, included in the checkpoint, and shown as signed ✓`;
    } else if (!named) {
      text = "the heading names another request than the records ✗";
    } else if (rows.some((row) => row.dataset.facts === "mismatch")) {
      text = "the page shows fields that differ from the signed records ✗ (hover a badge for why)";
    }
    mark(evidence, "verdict", state, text);
    evidence.dataset.state = state;
  }

  /** Check every record of the page; sets each row's data-signature, data-inclusion, data-chain. */
  async function checkPage(root) {
    const evidence = root.getElementById("evidence");
    if (evidence === null) return;
    const rows = [...root.querySelectorAll("[data-record]")];
    evidence.dataset.state = "pending";
    for (const row of rows) mark(row, "signature", "pending", TEXT.signature.pending);
    let loaded;
    try {
      if (!window.isSecureContext || !crypto.subtle) throw new Error("this page needs https (or localhost) to check signatures");
      display();
      loaded = await loadKeys();
    } catch (error) {
      for (const row of rows) {
        for (const kind of ["signature", "inclusion", "facts"]) mark(row, kind, "error", "could not check", error.message);
      }
      mark(evidence, "verdict", "error", `could not check: ${error.message}`);
      evidence.dataset.state = "error";
      return;
    }
    const keyinfo = evidence.querySelector('[data-badge="keyinfo"]');
    if (keyinfo !== null) keyinfo.textContent = `Log keys: ${[...loaded.keys.keys()].join(", ")} · checkpoint key ${loaded.logKey.name}+${hex(loaded.logKey.keyId)}`;
    const checkpoint = await checkCheckpoint(evidence, loaded.keys, loaded.logKey);
    const checked = [];
    for (const row of rows) checked.push(await checkRow(row, loaded.keys, evidence.dataset.requestId, checkpoint));
    await checkChain(rows, checked);
    checkOrder(rows, checked);
    verdict(root, evidence, rows);
  }

  window.GrantlineLineage = Object.freeze({
    b64decode,
    b64urlDecode,
    trustedKeys,
    splitLine,
    verifyRecord,
    chainHash,
    leafHash,
    rootFromInclusion,
    parseLogKey,
    openNote,
    checkPage,
  });

  function start() {
    checkPage(document).catch((error) => {
      const evidence = document.getElementById("evidence");
      if (evidence !== null) {
        mark(evidence, "verdict", "error", `could not check: ${error.message}`);
        evidence.dataset.state = "error";
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
