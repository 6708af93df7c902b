"use strict";
// posd's live page: reads the JSON API, follows /api/events, and re-checks
// any block's draw here with WebCrypto rather than taking posd's word for it.
// Only textContent and DOM calls put data on the page: addresses and slash
// reasons come from strangers.

const BLOCKS_SHOWN = 24;
const ROWS_SHOWN = 50;
/** Validators read at most: the page's view of a large set. */
const VALIDATORS_READ = 1000;
const ROUND_POLL_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
const fmt = new Intl.NumberFormat();
// "1 token", "2 tokens": a count in a sentence, as posd and posctl write it.
const count = (n, noun) => `${fmt.format(n)} ${noun}${n === 1 ? "" : "s"}`;

/** An element with attributes and children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const el = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c);
  return el;
}

async function getJSON(path) {
  const r = await fetch(path);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || `${path}: HTTP ${r.status}`);
  return body;
}

async function getLines(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error((await r.json()).error || `${path}: HTTP ${r.status}`);
  return (await r.text()).split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

const short = (hex) => (hex.length > 12 ? `${hex.slice(0, 10)}…` : hex);

/** Distinct colours for the first validators seen, then colours from the address. */
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const colours = new Map();

/** A validator's colour, the same everywhere on the page. */
function colour(address) {
  if (!colours.has(address)) {
    colours.set(address, colours.size < PALETTE.length ? PALETTE[colours.size]
      : `hsl(${parseInt(address.slice(0, 6), 16) % 360} 65% 45%)`);
  }
  return colours.get(address);
}

function who(address) {
  const chip = h("span", { class: "chip", "aria-hidden": "true" });
  chip.style.background = colour(address);
  return h("span", { class: "who", title: address }, chip, h("code", {}, short(address)));
}

function percent(share) {
  return `${(share * 100).toFixed(share > 0 && share < 0.1 ? 1 : 0)}%`;
}

// ---- the chain ----

const blocks = $("blocks");

function addBlock(b, fresh) {
  if (blocks.querySelector(`[data-index="${b.Index}"]`)) return;
  const time = new Date(b.Timestamp).toLocaleTimeString();
  const button = h("button", { type: "button", class: "block-card" },
    h("span", { class: "index" }, `#${b.Index}`),
    h("span", { class: "time" }, time),
    b.Validator ? who(b.Validator) : h("span", { class: "who" }, "genesis"),
    h("span", { class: "bpm" }, `BPM ${b.BPM}`),
    h("code", { class: "hash", title: b.Hash }, short(b.Hash)));
  if (b.Validator) button.style.borderTopColor = colour(b.Validator);
  button.addEventListener("click", () => explain(b.Index));
  const li = h("li", { "data-index": String(b.Index), class: fresh ? "fresh" : "" }, button);
  blocks.append(li);
  while (blocks.children.length > BLOCKS_SHOWN) blocks.firstElementChild.remove();
  blocks.scrollLeft = blocks.scrollWidth;
  $("s-height").textContent = fmt.format(b.Index);
}

function log(text) {
  const feed = $("feed");
  feed.prepend(h("li", {}, h("time", {}, new Date().toLocaleTimeString()), " ", text));
  while (feed.children.length > 6) feed.lastElementChild.remove();
}

// ---- status, the open round, validators ----

let round = { candidates: [], total: 0n };
let nextRoundAt = null;

let validatorCount = 0;

/**
 * The chain's weighting rule and its parameters, as /api/status names them
 * (`lottery_weighting`, `age_window`, `work_bits`, `work_bonus_max`): fixed
 * at genesis. A draw is re-checked under this rule.
 */
let chain = null;

/** The chain's rule, reading the status first if the page has not yet. */
async function chainRule() {
  if (!chain) await refreshStatus();
  return chain;
}

function ruleOf(s) {
  const { lottery_weighting: weighting = "stake", age_window, work_bits, work_bonus_max } = s;
  return { weighting, age_window, work_bits, work_bonus_max };
}

/** The rule as posctl prints it: `stake_age (age_window 10)`. */
function ruleName(c) {
  return c.weighting === "stake_age" ? `stake_age (age_window ${c.age_window})`
    : c.weighting === "stake_work" ? `stake_work (work_bits ${c.work_bits}, work_bonus_max ${c.work_bonus_max})`
      : "stake";
}

/** The rule's formula in a sentence (docs/LOTTERY.md). */
function ruleSays(c) {
  switch (c.weighting) {
    case "stake_age":
      return "weight = stake × (1 + age), age = how many rounds of the last " +
        `${count(c.age_window, "block")} had the validator as a candidate, counted after its latest win`;
    case "stake_work":
      return `weight = stake × 2^min(z − ${c.work_bits}, ${c.work_bonus_max}), z = the leading zero bits of ` +
        `the proposal's work hash, when z ≥ ${c.work_bits}; otherwise (or with no nonce) weight = stake`;
    default:
      return "weight = stake";
  }
}

function showRule() {
  $("s-rule").textContent = ruleName(chain);
  $("s-rule").title = ruleSays(chain);
  $("chart-rule").textContent = chain.weighting === "stake" ? ""
    : ` Under ${chain.weighting} wins follow weight (${ruleSays(chain)}), not stake alone, so dots ` +
      "may sit off the diagonal by design.";
}

async function refreshStatus() {
  const s = await getJSON("api/status");
  chain = ruleOf(s);
  showRule();
  validatorCount = s.validators_active + s.validators_slashed;
  $("s-height").textContent = fmt.format(s.height);
  $("s-validators").textContent =
    `${fmt.format(s.validators_active)} active, ${fmt.format(s.validators_slashed)} slashed`;
  $("s-connected").textContent = fmt.format(s.connected);
}

async function refreshRound() {
  const r = await getJSON("api/round");
  round = { ...r, total: BigInt(r.total_weight ?? r.total_stake) };
  if (events?.readyState === EventSource.OPEN) liveness("● live", true);
  nextRoundAt = Date.now() + r.next_round_in_ms;
  $("s-pending").textContent = fmt.format(r.candidates.length);
  $("round-title").textContent = `This round: block ${fmt.format(r.index)}`;
  $("round-summary").textContent = (r.candidates.length ? openRoundSays(r)
    : "No proposals yet. Without one the round ends with no block.") +
    ` posd has committed to this round's secret (${short(r.commitment)}); the draw will reveal it.`;
  // Under stake the weight is the stake: its column is left out.
  const weighted = (r.weighting ?? "stake") !== "stake";
  $("round-weight").hidden = !weighted;
  const body = $("round").tBodies[0];
  const heavier = (a, b) => (weightOf(b) > weightOf(a) ? 1 : weightOf(b) < weightOf(a) ? -1 : 0);
  const sorted = [...r.candidates].sort(heavier);
  body.replaceChildren(...sorted.slice(0, ROWS_SHOWN).map((c) => {
    const share = chance(weightOf(c));
    const bar = h("span", { class: "bar" });
    bar.style.width = percent(share);
    return h("tr", {},
      h("td", {}, who(c.address)),
      h("td", { class: "num" }, fmt.format(c.stake)),
      h("td", { class: "num" }, String(c.bpm)),
      ...(weighted ? [h("td", { class: "num" }, fmt.format(weightOf(c)), h("span", { class: "why" }, why(c)))] : []),
      h("td", { class: "chance" }, h("span", { class: "track" }, bar), percent(share)));
  }));
  showValidators();
}

/** What the open round's chances rest on, said plainly for the chain's rule. */
function openRoundSays(r) {
  const n = `${r.candidates.length} proposer(s)`;
  switch (r.weighting) {
    case "stake_age":
      return `${n} weigh ${fmt.format(round.total)} in all (stake × (1 + age), ages from the rounds of ` +
        `the last ${count(chain?.age_window ?? 0, "block")}); each one's chance is its share of that weight. ` +
        "Ages change only when a block is made, so these chances hold until the round closes, " +
        "unless someone else proposes.";
    case "stake_work":
      return `${n} weigh ${fmt.format(round.total)} in all, counting the work in the nonce each proposal ` +
        "carries now; each one's chance is its share of that weight. A proposer may still send a better " +
        "nonce before the round closes, so these are the chances as posd knows them now, not final ones.";
    default:
      return `${n} share ${fmt.format(round.total)} staked tokens; each one's chance is its share of that stake.`;
  }
}

/** A candidate's weight: the stored or computed one, its stake under `stake`. */
const weightOf = (c) => BigInt(c.weight ?? c.stake);

/** Why a candidate weighs what it does: its age, or its nonce's work. */
function why(c) {
  if (c.age !== undefined) return `age ${c.age}`;
  if (c.work_bits === undefined) return "";
  if (c.nonce === null) return "no nonce";
  const below = chain && c.work_bits < chain.work_bits ? `, below ${chain.work_bits}` : "";
  return `${c.work_bits} zero bits${below}`;
}

/** A weight's share of the open round's total weight. */
function chance(weight) {
  return round.total ? Number((BigInt(weight) * 1000000n) / round.total) / 1e6 : 0;
}

function tickCountdown() {
  if (nextRoundAt === null) return;
  const s = Math.max(0, Math.round((nextRoundAt - Date.now()) / 1000));
  const text = s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
    : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
  $("s-next").textContent = text;
}

let validators = [];

async function refreshValidators() {
  validators = await getLines(`api/validators?status=all&limit=${VALIDATORS_READ}`);
  showValidators();
}

function showValidators() {
  const sorted = [...validators].sort((a, b) => b.balance - a.balance || b.blocks_won - a.blocks_won);
  const proposing = new Map(round.candidates.map((c) => [c.address, weightOf(c)]));
  $("validators").tBodies[0].replaceChildren(...sorted.slice(0, ROWS_SHOWN).map((v) => h("tr",
    { class: v.status },
    h("td", {}, who(v.address)),
    h("td", { class: "num" }, fmt.format(v.balance)),
    h("td", {}, v.status === "slashed" ? `slashed: ${v.slash_reason}`
      : `${v.status}${v.connected ? ", connected" : ""}`),
    h("td", { class: "num" }, fmt.format(v.blocks_won)),
    h("td", { class: "num" }, proposing.has(v.address) ? percent(chance(proposing.get(v.address))) : "–"))));
  const hidden = Math.max(sorted.length, validatorCount) - ROWS_SHOWN;
  $("validators-more").textContent = hidden <= 0 ? ""
    : validatorCount > sorted.length
      ? `and ${fmt.format(hidden)} more (ranked among the first ${fmt.format(sorted.length)} by address)`
      : `and ${fmt.format(hidden)} more`;
  chart(sorted.filter((v) => v.status === "active").slice(0, ROWS_SHOWN));
}

/** Stake share (across) against share of blocks won (up), with the fair diagonal. */
function chart(shown) {
  const svg = $("chart");
  const [x0, y0, w, ht] = [44, 16, 300, 200];
  const stake = shown.reduce((t, v) => t + v.balance, 0);
  const won = shown.reduce((t, v) => t + v.blocks_won, 0);
  const top = Math.max(0.2, ...shown.map((v) => Math.max(
    stake ? v.balance / stake : 0, won ? v.blocks_won / won : 0)));
  const scale = Math.min(1, Math.ceil(top * 5) / 5);
  const step = scale > 0.4 ? 0.2 : 0.1;
  const X = (share) => x0 + (share / scale) * w;
  const Y = (share) => y0 + ht - (share / scale) * ht;
  const parts = [
    h("svg:rect", { x: x0, y: y0, width: w, height: ht, class: "plot" }),
    h("svg:line", { x1: X(0), y1: Y(0), x2: X(scale), y2: Y(scale), class: "fair" }),
  ];
  for (let i = 0; i * step <= scale + 1e-9; i++) {
    const s = i * step;
    parts.push(h("svg:text", { x: X(s), y: y0 + ht + 14, class: "tick", "text-anchor": "middle" }, percent(s)));
    parts.push(h("svg:text", { x: x0 - 6, y: Y(s) + 4, class: "tick", "text-anchor": "end" }, percent(s)));
  }
  parts.push(h("svg:text", { x: x0 + w / 2, y: y0 + ht + 32, class: "axis", "text-anchor": "middle" }, "share of stake"));
  parts.push(h("svg:text", { x: 12, y: y0 + ht / 2, class: "axis", "text-anchor": "middle",
    transform: `rotate(-90 12 ${y0 + ht / 2})` }, "share of blocks won"));
  for (const v of shown) {
    const [sx, sy] = [stake ? v.balance / stake : 0, won ? v.blocks_won / won : 0];
    const dot = h("svg:circle", { cx: X(sx), cy: Y(sy), r: 6, class: "dot", fill: colour(v.address) },
    h("svg:title", {}, `${v.address}: ${percent(sx)} of stake, ${percent(sy)} of blocks won`));
    parts.push(dot);
    if (shown.length <= 8) {
      const right = sx / scale > 0.75;
      parts.push(h("svg:text", { x: X(sx) + (right ? -9 : 9), y: Y(sy) + 4, class: "label",
        "text-anchor": right ? "end" : "start" }, v.address.slice(0, 6)));
    }
  }
  if (!shown.length) {
    parts.push(h("svg:text", { x: x0 + w / 2, y: y0 + ht / 2, class: "axis", "text-anchor": "middle" },
      "no active validators yet"));
  }
  svg.replaceChildren(...parts);
}

// ---- the draw (crates/pos-core/src/lottery.rs, docs/LOTTERY.md) ----

const enc = new TextEncoder();
const bytes = (hex) => Uint8Array.from(hex.match(/../g) || [], (x) => parseInt(x, 16));
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const u64 = (n) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
};
const join = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};
const sha256 = async (data) => new Uint8Array(await crypto.subtle.digest("SHA-256", data));

/**
 * The seed rules of docs/LOTTERY.md, by a round's `lottery` version: the bytes
 * hashed into the seed, how to say so, and (v2) the bytes whose hash is the
 * commitment the revealed secret must answer. `tag` follows the domain string:
 * "" under `stake` (its seeds are what they always were), `/stake_age` or
 * `/stake_work` under the other rules.
 */
const RULES = {
  1: {
    seed: (r, tag) => join(enc.encode(`posd-lottery-v1${tag}`), bytes(r.prev_hash), u64(r.index)),
    says: (tag) => `SHA-256("posd-lottery-v1${tag}" ‖ previous block's hash ‖ block index as 8 bytes, big-endian)`,
  },
  2: {
    seed: (r, tag) => join(enc.encode(`posd-lottery-v2${tag}`), bytes(r.prev_hash), u64(r.index), bytes(r.reveal)),
    says: (tag) => `SHA-256("posd-lottery-v2${tag}" ‖ previous block's hash ‖ block index as 8 bytes, ` +
      "big-endian ‖ the secret revealed now)",
    commit: (r) => join(enc.encode("posd-lottery-v2-commit"), bytes(r.reveal)),
  },
};

/** Leading zero bits of a digest. */
function leadingZeros(d) {
  let zeros = 0;
  for (const byte of d) {
    zeros += Math.clz32(byte) - 24;
    if (byte !== 0) break;
  }
  return zeros;
}

/** The ASCII text a stake_work nonce is judged by. */
const workText = (r, c) => `posd-work-v1|${r.prev_hash}|${r.index}|${c.address}|${c.bpm}|${c.nonce}`;

/**
 * Each weighting's weights of a round's candidates (in address order), made
 * here from what the round stores: `history` holds the previous rounds'
 * records (read under stake_age), `rule` the chain's parameters.
 */
const WEIGHTS = {
  stake: async (r, candidates) => candidates.map((c) => ({ weight: BigInt(c.stake) })),
  stake_age: async (r, candidates, history, rule) => {
    const age = new Map(candidates.map((c) => [c.address, 0]));
    const first = Math.max(0, r.index - rule.age_window);
    for (const past of history) {
      if (past.index < first || past.index >= r.index) continue;
      for (const c of past.candidates) {
        if (age.has(c.address)) age.set(c.address, c.address === past.winner ? 0 : age.get(c.address) + 1);
      }
    }
    return candidates.map((c) => ({ weight: BigInt(c.stake) * BigInt(1 + age.get(c.address)),
      age: age.get(c.address) }));
  },
  stake_work: (r, candidates, history, rule) => Promise.all(candidates.map(async (c) => {
    const nonce = c.nonce ?? null;
    const zeros = nonce === null ? 0 : leadingZeros(await sha256(enc.encode(workText(r, c))));
    const bonus = zeros >= rule.work_bits ? Math.min(zeros - rule.work_bits, rule.work_bonus_max) : 0;
    return { weight: BigInt(c.stake) << BigInt(bonus), zeros, nonce };
  })),
};

const WORD_MAX = (1n << 128n) - 1n;
const STAKE = { weighting: "stake" };

/**
 * Replays a stored round under the chain's `rule`: commitment (v2), each
 * candidate's weight (from `history`, the previous rounds' records, under
 * stake_age; from its nonce under stake_work), seed, ticket by rejection
 * sampling, winner.
 */
async function replay(r, history = [], rule = chain ?? STAKE) {
  const lottery = RULES[r.lottery ?? 1];
  if (!lottery) throw new Error(`lottery v${r.lottery} is newer than this page`);
  const weigh = WEIGHTS[rule.weighting];
  if (!weigh) throw new Error(`weighting ${rule.weighting} is newer than this page`);
  const tag = rule.weighting === "stake" ? "" : `/${rule.weighting}`;
  const commitment = lottery.commit ? hex(await sha256(lottery.commit(r))) : null;
  const seed = await sha256(lottery.seed(r, tag));
  const order = (a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0);
  const candidates = [...r.candidates].sort(order);
  const weights = await weigh(r, candidates, history, rule);
  const stake = candidates.reduce((t, c) => t + BigInt(c.stake), 0n);
  const total = weights.reduce((t, w) => t + w.weight, 0n);
  // 2^128 mod total top words would favour low tickets: they are skipped.
  const rejected = ((WORD_MAX % total) + 1n) % total;
  const words = [];
  let ticket = null;
  for (let i = 0; ticket === null && i < 256; i++) {
    const word = BigInt(`0x${hex((await sha256(join(seed, u64(i)))).slice(0, 16))}`);
    const accepted = word <= WORD_MAX - rejected;
    words.push({ i, word, accepted });
    if (accepted) ticket = word % total;
  }
  let running = 0n;
  const winner = weights.findIndex((w) => (running += w.weight) > ticket);
  return { lottery, tag, rule, commitment, seed: hex(seed), candidates, weights, stake, total, words, ticket,
    winner };
}

/** Throws unless the stored round's numbers are whole numbers (BigInt refuses others). */
function numbers(r) {
  try {
    [r.ticket, r.total_stake, r.total_weight ?? 0, ...r.candidates.map((c) => c.weight ?? c.stake)].forEach(BigInt);
  } catch {
    throw new Error("the stored round holds a number that is not a whole number");
  }
}

/** At most three of a list's items, then how many more. */
function few(items) {
  return items.length > 3 ? [...items.slice(0, 3), `${items.length - 3} more`] : items;
}

/** Where a stored candidate's weight or why differs from the one made here. */
function weightMismatches(stored, mine) {
  const wrong = [];
  stored.forEach((c, i) => {
    const w = mine.weights[i];
    const name = short(c.address);
    if (weightOf(c) !== w.weight) wrong.push(`weight of ${name} (stored ${c.weight ?? c.stake}, here ${w.weight})`);
    if (w.age !== undefined && c.age !== w.age) wrong.push(`age of ${name} (stored ${c.age}, here ${w.age})`);
    if (w.zeros !== undefined && c.work_bits !== w.zeros) {
      wrong.push(`work bits of ${name} (stored ${c.work_bits}, here ${w.zeros})`);
    }
  });
  return few(wrong);
}

/**
 * What differs between the stored round (with its block, and the round before
 * it, which named this round's commitment) and the replay.
 */
function mismatches(r, block, previous, mine) {
  const wrong = [];
  if (mine.commitment !== (r.commitment ?? null)) {
    wrong.push("the revealed secret does not hash to the commitment");
  }
  if (r.lottery === 2 && previous?.lottery === 2 && previous.next_commitment !== r.commitment) {
    wrong.push(`commitment (block ${r.index - 1}'s round committed to another)`);
  }
  if ((r.weighting ?? "stake") !== mine.rule.weighting) {
    wrong.push(`weighting (stored ${r.weighting}, the chain's rule is ${mine.rule.weighting})`);
  }
  if (mine.seed !== r.seed) wrong.push(`seed (stored ${short(r.seed)}, here ${short(mine.seed)})`);
  const ordered = mine.candidates.every((c, i) => c.address === r.candidates[i].address);
  if (!ordered) wrong.push("candidate order");
  else wrong.push(...weightMismatches(r.candidates, mine));
  if (mine.stake !== BigInt(r.total_stake)) wrong.push("total stake");
  if (mine.total !== BigInt(r.total_weight ?? r.total_stake)) {
    wrong.push(`total weight (stored ${r.total_weight}, here ${mine.total})`);
  }
  if (mine.ticket !== BigInt(r.ticket)) wrong.push(`ticket (stored ${r.ticket}, here ${mine.ticket})`);
  const winner = mine.candidates[mine.winner]?.address;
  if (winner !== r.winner) wrong.push("winner");
  if (winner !== block.Validator) wrong.push(`block ${block.Index}'s validator`);
  return wrong;
}

/** Stored rounds read as history (final once stored); the explained round is always read afresh. */
const pastRounds = new Map();
const PAST_KEPT = 2048;
/** History reads in flight at once. */
const PAST_READS = 8;

/**
 * The records of the rounds a stake_age draw of block `index` reads: blocks
 * index − age_window to index − 1 (from 1), oldest first; `previous` is the
 * one just read for the commitment check.
 */
async function history(index, rule, previous) {
  if (rule.weighting !== "stake_age") return [];
  const wanted = [];
  for (let i = Math.max(1, index - rule.age_window); i < index; i++) wanted.push(i);
  const read = async (i) => {
    if (i === index - 1 && previous) return previous;
    if (!pastRounds.has(i)) {
      pastRounds.set(i, await getJSON(`api/rounds/${i}`));
      if (pastRounds.size > PAST_KEPT) pastRounds.delete(pastRounds.keys().next().value);
    }
    return pastRounds.get(i);
  };
  const out = [];
  for (let at = 0; at < wanted.length; at += PAST_READS) {
    out.push(...await Promise.all(wanted.slice(at, at + PAST_READS).map(read)));
  }
  return out;
}

let drawShown = null;
let drawChosen = false;

async function explain(index, chosen = true) {
  drawChosen ||= chosen;
  drawShown = index;
  $("draw-index").value = index;
  const out = $("draw");
  const verdict = $("draw-verdict");
  verdict.className = "verdict";
  verdict.textContent = `checking block ${index}…`;
  let r, block, previous, rule, past;
  try {
    [r, block, previous, rule] = await Promise.all([getJSON(`api/rounds/${index}`),
      getJSON(`api/blocks/${index}`),
      // Genesis, and the blocks of a migrated chain's v1 past, name no commitment.
      index > 1 ? getJSON(`api/rounds/${index - 1}`).catch(() => null) : null,
      chainRule()]);
    past = await history(index, rule, previous);
  } catch (e) {
    out.replaceChildren();
    verdict.textContent = e.message;
    return;
  }
  if (!window.crypto || !crypto.subtle) {
    out.replaceChildren();
    verdict.textContent = "This browser offers WebCrypto only to https:// and localhost pages, so the " +
      `draw cannot be re-checked here. posd's own replay says: ${r.replay_ok ? "ok" : r.replay_error}.`;
    return;
  }
  let mine;
  try {
    numbers(r);
    mine = await replay(r, past, rule);
  } catch (e) {
    out.replaceChildren();
    verdict.className = "verdict bad";
    verdict.textContent = `✗ cannot re-check block ${index}'s draw: ${e.message}`;
    return;
  }
  if (drawShown !== index) return;
  const winner = mine.candidates[mine.winner];
  const weighted = rule.weighting !== "stake";
  const unit = weighted ? "unit of weight" : "staked token";
  const steps = h("ol", { class: "steps" },
    ...(mine.commitment === null ? [] : [commitmentStep(r, previous, mine)]),
    ...(weighted ? [weightStep(r, past, mine)] : []),
    h("li", {}, h("strong", {}, "Seed. "), `${mine.lottery.says(mine.tag)} = `, h("code", { class: "hex" }, mine.seed)),
    h("li", {}, h("strong", {}, "Tickets. "),
      `The ${count(mine.candidates.length, "candidate")}, in address order, hold one ticket per ` +
      `${unit}: ${count(mine.total, "ticket")} in all.`, tickets(r, mine)),
    h("li", {}, h("strong", {}, "The ticket. "),
      "Word i is the first 16 bytes of SHA-256(seed ‖ i as 8 bytes); words in the biased top of the " +
      "range are skipped, the first other one modulo the total is the ticket: ",
      h("ul", { class: "words" }, ...mine.words.map((w) => h("li", {},
        `word ${w.i} = ${w.word} `, w.accepted ? `→ ticket ${mine.ticket}` : "(skipped)")))),
    h("li", {}, h("strong", {}, "The winner "),
      `is the first candidate whose running ${weighted ? "weight" : "stake"} sum passes the ticket: `,
      winner ? who(winner.address) : "none", winner ? ` (BPM ${winner.bpm}).` : ""));
  out.replaceChildren(steps);
  const wrong = mismatches(r, block, previous, mine);
  const made = { stake_age: `the ages from ${count(past.length, "earlier round")}, `,
    stake_work: "the work of every nonce, " }[rule.weighting] ?? "";
  verdict.className = wrong.length ? "verdict bad" : "verdict good";
  verdict.textContent = wrong.length
    ? `✗ Block ${index}'s draw does not match: ${wrong.join("; ")}.`
    : `✓ Block ${index}'s draw matches: ${mine.commitment ? "the revealed secret answers the commitment; " : ""}` +
      `${made}${weighted ? "weights, " : ""}seed, ticket and winner recomputed in this browser agree with ` +
      "the stored round and the block.";
}

/** Lottery v2: the secret revealed now against what posd committed to before the round. */
function commitmentStep(r, previous, mine) {
  const from = previous?.lottery === 2
    ? `block ${r.index - 1}'s round named it as the next commitment`
    : "it is the chain's lottery v2 anchor, made when the chain was created or migrated";
  return h("li", {}, h("strong", {}, "Commitment. "),
    "Before this round opened, posd committed to ", h("code", { class: "hex" }, r.commitment ?? "none"),
    ` (${from}). The round reveals the secret `, h("code", { class: "hex" }, r.reveal),
    ", and SHA-256(\"posd-lottery-v2-commit\" ‖ secret) = ", h("code", { class: "hex" }, mine.commitment),
    mine.commitment === r.commitment ? " ✓" : " ✗");
}

/** stake_age and stake_work: how the weights in the table below were made here. */
function weightStep(r, past, mine) {
  const rule = mine.rule;
  const how = rule.weighting === "stake_age"
    ? (past.length
      ? `Each age counts the rounds of blocks ${past[0].index} to ${past[past.length - 1].index} ` +
        "(read from /api/rounds) that had the candidate, back to 0 at each one it won."
      : "No earlier rounds: every age is 0.")
    : `z is counted here with SHA-256 of the text "posd-work-v1|${short(r.prev_hash)}|${r.index}|` +
      "<address>|<bpm>|<nonce>\" for each candidate's stored nonce; the nonce never enters the seed.";
  return h("li", {}, h("strong", {}, "Weights. "), `The chain's rule is ${ruleName(rule)}: ${ruleSays(rule)}. `,
    how);
}

/** The tickets as one bar split by weight, with the drawn ticket marked. */
function tickets(r, mine) {
  const weighted = mine.rule.weighting !== "stake";
  const bar = h("div", { class: "tickets", role: "img",
    "aria-label": `ticket ${mine.ticket} of ${mine.total}` });
  let start = 0n;
  mine.candidates.forEach((c, i) => {
    const end = start + mine.weights[i].weight;
    const seg = h("span", { class: i === mine.winner ? "seg won" : "seg",
      title: `${c.address}: tickets ${start} to ${end - 1n}` });
    seg.style.flexGrow = String(Number((mine.weights[i].weight * 1000000n) / mine.total) || 1);
    seg.style.background = colour(c.address);
    bar.append(seg);
    start = end;
  });
  const mark = h("span", { class: "mark", "aria-hidden": "true" });
  mark.style.left = `${Number((mine.ticket * 10000n) / mine.total) / 100}%`;
  bar.append(mark);
  const stored = new Map(r.candidates.map((c) => [c.address, c]));
  const rows = mine.candidates.slice(0, ROWS_SHOWN);
  let from = 0n;
  const table = h("table", { class: "table" },
    h("caption", { class: "visually-hidden" }, "Candidates, their weights and their tickets"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Candidate"),
      h("th", { scope: "col", class: "num" }, "Stake"), h("th", { scope: "col", class: "num" }, "BPM"),
      ...(weighted ? [h("th", { scope: "col", class: "num" }, "Weight"), h("th", { scope: "col" }, "Why")] : []),
      h("th", { scope: "col" }, "Tickets"))),
    h("tbody", {}, ...rows.map((c, i) => {
      const w = mine.weights[i];
      const to = from + w.weight;
      const kept = stored.get(c.address);
      const same = !kept || weightOf(kept) === w.weight;
      const row = h("tr", { class: i === mine.winner ? "won" : "" },
        h("td", {}, who(c.address), i === mine.winner ? " ★ winner" : ""),
        h("td", { class: "num" }, fmt.format(c.stake)),
        h("td", { class: "num" }, String(c.bpm)),
        ...(weighted ? [
          h("td", { class: same ? "num" : "num bad" }, fmt.format(w.weight),
            same ? "" : ` ✗ stored ${kept.weight ?? kept.stake}`),
          h("td", {}, w.age !== undefined ? `age ${w.age}`
            : w.nonce === null ? "no nonce"
              : `nonce ${w.nonce}: ${w.zeros} zero bits${w.zeros < mine.rule.work_bits
                ? `, below ${mine.rule.work_bits}` : ""}`),
        ] : []),
        h("td", {}, `${from} … ${to - 1n}`));
      from = to;
      return row;
    })));
  return h("div", {}, bar, table);
}

// ---- live ----

let refreshing = null;

/** Refreshes everything soon, once however many events ask. */
function soon() {
  refreshing ??= setTimeout(() => {
    refreshing = null;
    Promise.all([refreshStatus(), refreshValidators(), refreshRound()]).catch(unreachable);
  }, 200);
}

let events = null;

function liveness(text, on) {
  $("live").textContent = text;
  $("live").className = on ? "live on" : "live off";
}

/** posd did not answer (restarting?): said in the live indicator, not the feed. */
function unreachable(e) {
  liveness(`posd unreachable: ${e.message}`, false);
}

function follow(after) {
  events = new EventSource(`api/events?after=${after}`);
  events.onopen = () => liveness("● live", true);
  events.onerror = () => liveness("reconnecting…", false);
  events.addEventListener("block", (e) => {
    const b = JSON.parse(e.data);
    addBlock(b, true);
    log(`block ${b.Index} won by ${short(b.Validator)} (BPM ${b.BPM})`);
    if (!drawChosen) explain(b.Index, false);
    soon();
  });
  events.addEventListener("slashing", (e) => {
    const v = JSON.parse(e.data);
    log(`validator ${short(v.address)} slashed: ${v.slash_reason} (${count(v.forfeited, "token")} forfeited)`);
    soon();
  });
  events.addEventListener("notice", (e) => { log(JSON.parse(e.data).text); soon(); });
}

async function start() {
  $("draw-form").addEventListener("submit", (e) => {
    e.preventDefault();
    explain(Number($("draw-index").value));
  });
  const latest = await getLines(`api/blocks?last=${BLOCKS_SHOWN}`);
  latest.forEach((b) => addBlock(b, false));
  const tip = latest.length ? latest[latest.length - 1].Index : 0;
  follow(tip);
  await Promise.all([refreshStatus(), refreshValidators(), refreshRound()]);
  setInterval(() => refreshRound().catch(unreachable), ROUND_POLL_MS);
  setInterval(tickCountdown, 250);
  tickCountdown();
  if (tip > 0) explain(tip, false);
}

start().catch((e) => { $("live").textContent = `cannot load: ${e.message}`; });
