// The seed 001 §4.3 reconnect policy and the codecs, without a server.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as msgpack from "@msgpack/msgpack";

import { JsonCodec, MsgpackCodec, ReconnectPolicy, defaultCodec } from "../src/tidings.js";

test("default policy waits 1, 1.5, 2.25 … seconds, capped at 30, without end", () => {
  const policy = new ReconnectPolicy();
  const waits = Array.from({ length: 12 }, (_, i) => policy.delay(i + 1));
  assert.deepEqual(waits.slice(0, 4), [1000, 1500, 2250, 3375]);
  assert.equal(waits[9], 30000);  // 1.5^9 = 38.4 s, capped
  assert.equal(waits[11], 30000);
  assert.equal(policy.delay(1e6), 30000);
});

test("max attempts ends the retries, and jitter stays within its band and the cap", () => {
  const limited = new ReconnectPolicy({ maxAttempts: 2 });
  assert.equal(limited.delay(2), 1500);
  assert.equal(limited.delay(3), null);
  const jittered = new ReconnectPolicy({ jitter: 0.2 });
  assert.equal(jittered.delay(1, () => 0), 800);
  assert.equal(jittered.delay(1, () => 1), 1200);
  assert.equal(jittered.delay(20, () => 1), 30000);
});

test("a policy that cannot work is refused", () => {
  assert.throws(() => new ReconnectPolicy({ initialInterval: 5000, maxInterval: 1000 }), RangeError);
  assert.throws(() => new ReconnectPolicy({ backoffFactor: 0.5 }), RangeError);
  assert.throws(() => new ReconnectPolicy({ jitter: 2 }), RangeError);
  assert.throws(() => new ReconnectPolicy({ maxAttempts: -1 }), RangeError);
});

test("JSON envelopes are text with the payload inline", () => {
  const codec = new JsonCodec();
  assert.equal(codec.binary, false);
  assert.equal(codec.encode(5, 8, { status: "away" }), '{"type":5,"seq":8,"payload":{"status":"away"}}');
  assert.equal(codec.encode(6, 7, undefined), '{"type":6,"seq":7}');
  assert.deepEqual(codec.decode('{"type":105,"seq":7}'), { type: 105, seq: 7, payload: {} });
  assert.throws(() => codec.decode(new Uint8Array([1])), TypeError);
});

test("MessagePack envelopes carry the payload as bin, encoded twice (seed 001 §2.2.1)", () => {
  const codec = new MsgpackCodec(msgpack);
  const bytes = codec.encode(5, 8, { status: "away" });
  // The bytes of docs/protocol.md's example, byte for byte.
  assert.equal(Buffer.from(bytes).toString("hex"),
               "83a47479706505a3736571" + "08a77061796c6f6164c40d" + "81a6737461747573a461776179");
  assert.deepEqual(codec.decode(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)),
                   { type: 5, seq: 8, payload: { status: "away" } });
  const pong = msgpack.encode({ type: 105, seq: 3, payload: new Uint8Array() });
  assert.deepEqual(codec.decode(pong), { type: 105, seq: 3, payload: {} });
  assert.throws(() => codec.decode("text"), TypeError);
  assert.throws(() => new MsgpackCodec({}), TypeError);
});

test("the default codec is JSON, or MessagePack once its browser build is loaded", () => {
  assert.ok(defaultCodec() instanceof JsonCodec);
  globalThis.MessagePack = msgpack;
  try {
    assert.ok(defaultCodec() instanceof MsgpackCodec);
  } finally {
    delete globalThis.MessagePack;
  }
});
