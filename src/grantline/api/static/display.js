/*
 * Grantline lineage page: what the page shows for each record, recomputed from the record's
 * verified body and compared with the page (docs/lineage-page.md).
 *
 * The tables (which fields each kind of record shows, under which label) are those of
 * grantline/api/ui/display.py, written into this file by the broker when it serves it; the
 * formatters below are that module's, rule for rule. lineage.js calls checkFacts and
 * fillDetails once a record's signature verified. Everything is written with textContent.
 */
(function () {
  "use strict";

  // The display tables (api/ui/display.py), written in by the broker when it serves this file.
  const DISPLAY = /*@display*/null;
  const ROW_TAGS = new Set(["LI", "DIV", "SPAN", "H3", "TIME", "DL", "DT", "DD", "UL", "DETAILS", "SUMMARY", "PRE"]);
  const BADGES = ["signature", "inclusion", "facts", "chain"];
  const hiddenChars = DISPLAY === null
    ? null
    : new RegExp(`[${DISPLAY.hidden.map(([low, high]) => `\\u{${low.toString(16)}}-\\u{${high.toString(16)}}`).join("")}]`, "gu");

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  /** A member of a parsed object, never one inherited from its prototype. */
  function own(object, name) {
    return isObject(object) && Object.hasOwn(object, name) ? object[name] : undefined;
  }

  function lookup(data, path) {
    for (const name of path.split(".")) data = own(data, name);
    return data;
  }

  function isEmpty(value) {
    if (value === null || value === undefined || value === "") return true;
    return Array.isArray(value) ? value.length === 0 : isObject(value) && Object.keys(value).length === 0;
  }

  // -- values as text (display.py) ------------------------------------------------------------

  // Object members in code point order, as Python sorts strings (not by UTF-16 units, and not
  // in the engine's own order, which puts integer-like names first).
  function byCodePoint(a, b) {
    const x = Array.from(a);
    const y = Array.from(b);
    for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
      const diff = x[i].codePointAt(0) - y[i].codePointAt(0);
      if (diff !== 0) return diff;
    }
    return x.length - y.length;
  }

  const sortedKeys = (object) => Object.keys(object).sort(byCodePoint);
  const integer = (value) => typeof value === "number" && Number.isInteger(value);

  /** Text as the page shows it: hidden characters as \uXXXX, cut at max_text characters. */
  function shown(text) {
    const visible = text.replace(hiddenChars, (c) => `\\u${c.codePointAt(0).toString(16).padStart(4, "0")}`);
    const chars = Array.from(visible);
    return chars.length <= DISPLAY.max_text ? visible : `${chars.slice(0, DISPLAY.max_text - 1).join("")}\u2026`;
  }

  /** JSON as Python's json.dumps(value, ensure_ascii=False, sort_keys=True) writes it. */
  function pyJson(value) {
    if (value === null || value === undefined) return "null";
    if (typeof value === "boolean") return value ? "true" : "false";
    if (typeof value !== "object") return typeof value === "string" ? JSON.stringify(value) : String(value);
    if (Array.isArray(value)) return `[${value.map(pyJson).join(", ")}]`;
    return `{${sortedKeys(value).map((name) => `${JSON.stringify(name)}: ${pyJson(value[name])}`).join(", ")}}`;
  }

  function plain(value) {
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (typeof value === "string") return value;
    if (value === null || value === undefined) return "";
    if (Array.isArray(value) && value.every((item) => typeof item === "string" || integer(item))) {
      return value.map(String).join(", ");
    }
    if (isObject(value) && Object.values(value).every((item) => typeof item === "string" || Array.isArray(item))) {
      return sortedKeys(value).map((name) => `${name}: ${plain(value[name])}`).join("; ");
    }
    return pyJson(value);
  }

  const textOf = (value) => shown(plain(value));

  const FORMATS = {
    text: textOf,
    chain(value) {
      if (Array.isArray(value)) return shown(value.map(plain).join(DISPLAY.arrow));
      const subjects = [];
      while (isObject(value) && subjects.length < DISPLAY.max_depth) {
        subjects.push(plain(own(value, "sub")));
        value = own(value, "act");
      }
      return shown(subjects.join(DISPLAY.arrow));
    },
    requirement(value) {
      const factors = own(value, "all_of");
      if (!Array.isArray(factors) || !factors.every(isObject)) return textOf(value);
      return shown(factors.map((f) => `${plain(own(f, "count"))} of ${plain(own(f, "group"))}`).join(", "));
    },
    seconds: (value) => (integer(value) ? `${value} s` : textOf(value)),
  };

  function titleOf(event) {
    if (Object.hasOwn(DISPLAY.titles, event)) return DISPLAY.titles[event];
    let name = event.replace(/_/g, " ");
    if (/^[a-z]/.test(name)) name = name[0].toUpperCase() + name.slice(1);
    return shown(name) || "Unreadable record";
  }

  // -- the facts of a record (timeline.py) -----------------------------------------------------

  /** Shown facts are [label, path in the body, text], in the order the page shows them. */
  function factsOf(data, spec) {
    const found = [];
    for (const [label, path, format] of spec) {
      if (path.startsWith("=")) {
        found.push([label, "event", textOf(path.slice(1))]);
        continue;
      }
      const value = lookup(data, path);
      if (!isEmpty(value)) found.push([label, `data.${path}`, FORMATS[format](value)]);
    }
    return found;
  }

  function reasonsOf(data, path) {
    const value = lookup(data, path);
    if (!Array.isArray(value)) return isEmpty(value) ? [] : [["", `data.${path}`, textOf(value)]];
    return value.map((item, i) => ["", `data.${path}[${i}]`, textOf(item)]);
  }

  function decisionOf(event, data) {
    if (event === "denied") return [["", "event", "denied"], ...reasonsOf(data, "reasons")];
    if (event === "approved" && lookup(data, "by") === "policy") return factsOf(data, DISPLAY.approved_by_policy);
    const decision = lookup(data, "decision");
    if (!DISPLAY.decided.includes(event) || !isObject(decision)) return [];
    const allow = own(decision, "allow");
    const outcome = typeof allow === "boolean" ? [["", "data.decision.allow", allow ? "allowed" : "denied"]] : [];
    const seen = new Set(); // one policy digest where the record and its decision agree
    const details = [];
    for (const fact of factsOf(data, DISPLAY.decision_facts)) {
      const key = JSON.stringify([fact[0], fact[2]]);
      if (!seen.has(key)) details.push(fact);
      seen.add(key);
    }
    return [...outcome, ...reasonsOf(data, "decision.reasons"), ...details];
  }

  /** Everything the page should show for a record body, as api/ui/timeline.py renders it. */
  function expectedFacts(body) {
    const data = own(body, "data");
    const event = typeof own(body, "event") === "string" ? body.event : "";
    const seq = own(body, "seq");
    const found = [
      ["", "seq", `#${integer(seq) ? seq : "?"}`],
      ["", "event", titleOf(event)],
      ["", "at", textOf(own(body, "at"))],
    ];
    const flag = lookup(data, "break_glass") === true ? "data.break_glass" : own(body, "break_glass") === true ? "break_glass" : "";
    if (flag) found.push(["", flag, "break-glass"]);
    const table = (kind) => (Object.hasOwn(DISPLAY[kind], event) ? DISPLAY[kind][event] : []);
    return [...found, ...factsOf(data, table("who")), ...factsOf(data, table("what")), ...decisionOf(event, data)];
  }

  /** Every member of nested objects as [dotted.name, text], as api/ui/timeline.py flattens. */
  function flatten(data) {
    const found = [];
    const into = (value, prefix, depth) => {
      if (found.length >= DISPLAY.max_facts) return;
      if (isObject(value) && Object.keys(value).length > 0 && depth < DISPLAY.max_depth) {
        for (const name of sortedKeys(value)) into(value[name], prefix ? `${prefix}.${name}` : name, depth + 1);
      } else if (Array.isArray(value) && depth < DISPLAY.max_depth && value.some((i) => Array.isArray(i) || isObject(i))) {
        value.forEach((item, index) => into(item, `${prefix}[${index}]`, depth + 1));
      } else {
        found.push([shown(prefix || "value"), textOf(value)]);
      }
    };
    into(data, "", 0);
    return found.slice(0, DISPLAY.max_facts);
  }

  // -- the page --------------------------------------------------------------------------------

  /** What a row shows: every element naming its field (data-path), with its label. */
  function shownFacts(row) {
    const found = [];
    const backed = new Set();
    for (const element of row.querySelectorAll(".record-head [data-path], .record-body [data-path]")) {
      const before = element.previousElementSibling;
      const label = element.tagName === "DD" && before !== null && before.tagName === "DT" ? before : null;
      found.push([label === null ? "" : label.textContent, element.dataset.path, element.textContent]);
      backed.add(element);
      if (label !== null) backed.add(label);
    }
    return { found, backed };
  }

  function describe(fact) {
    if (fact === undefined) return "nothing more";
    const [label, path, text] = fact;
    return `${label ? `${label} ` : ""}${JSON.stringify(text)} (${path})`;
  }

  /** Text or elements in the row that no verified field backs, nor the script wrote. */
  function strayContent(row, backed) {
    for (const element of row.querySelectorAll("*")) {
      if (!ROW_TAGS.has(element.tagName)) return `the row holds a <${element.tagName.toLowerCase()}> the page never renders`;
    }
    const written = [...BADGES.map((kind) => row.querySelector(`[data-badge="${kind}"]`)), row.querySelector("details")];
    const vouched = [...backed, ...written.filter((element) => element !== null)];
    const walker = document.createTreeWalker(row, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node !== null; node = walker.nextNode()) {
      const text = node.data.trim();
      if (text !== "" && !vouched.some((element) => element.contains(node))) {
        return `the row shows text no signed field backs: ${JSON.stringify(text.slice(0, 80))}`;
      }
    }
    return "";
  }

  /**
   * Whether the row shows exactly what the verified ``body`` says, each fact from its field,
   * nothing hidden and nothing else: { ok, reason }.
   */
  function checkFacts(row, body) {
    if (DISPLAY === null) return { ok: false, reason: "the script was served without its display tables" };
    const expected = expectedFacts(body);
    const { found, backed } = shownFacts(row);
    for (let i = 0; i < Math.max(expected.length, found.length); i += 1) {
      if (JSON.stringify(found[i]) !== JSON.stringify(expected[i])) {
        return { ok: false, reason: `the page shows ${describe(found[i])}, the signed record ${describe(expected[i])}` };
      }
    }
    for (const element of backed) {
      if (element.checkVisibility && !element.checkVisibility({ opacityProperty: true, visibilityProperty: true })) {
        return { ok: false, reason: `the page hides ${JSON.stringify(element.textContent)}` };
      }
    }
    const stray = strayContent(row, backed);
    return { ok: stray === "", reason: stray };
  }

  /** The row's details, written from the line's bytes: all fields only once it verified. */
  function fillDetails(row, line, body) {
    const details = row.querySelector("details");
    if (details === null) return;
    const summary = document.createElement("summary");
    const parts = [summary];
    if (body !== null && DISPLAY !== null) {
      summary.textContent = "All fields and the signed line";
      const list = document.createElement("dl");
      list.className = "facts details";
      for (const [label, value] of flatten(own(body, "data"))) {
        const term = document.createElement("dt");
        const text = document.createElement("dd");
        term.textContent = label;
        text.textContent = value;
        list.append(term, text);
      }
      parts.push(list);
    } else {
      summary.textContent = line === null ? "The page holds no readable line" : "The line as the page holds it (it did not verify)";
    }
    if (line !== null) {
      const pre = document.createElement("pre");
      pre.className = "line";
      pre.textContent = new TextDecoder().decode(line);
      parts.push(pre);
    }
    details.replaceChildren(...parts);
    details.dataset.source = body !== null && DISPLAY !== null ? "signed" : "unverified";
  }

  window.GrantlineDisplay = Object.freeze({
    textOf,
    format: (name, value) => FORMATS[name](value),
    flatten,
    expectedFacts,
    checkFacts,
    fillDetails,
  });
})();
