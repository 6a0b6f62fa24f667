// The official Gorse JavaScript SDK (gorsejs 0.4.8, unchanged) against a live Vitrina.
// run.sh starts the server and sets GORSE_ENDPOINT and GORSE_API_KEY; every test uses ids of
// its own, so the tests share one server.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import gorsejs from "gorsejs";

const { Gorse } = gorsejs;
const client = new Gorse({ endpoint: process.env.GORSE_ENDPOINT, secret: process.env.GORSE_API_KEY });
const fresh = (prefix) => `${prefix}-${randomUUID().slice(0, 8)}`;

/** Polls `check` until it holds: live popularity is re-ranked once a second. */
async function eventually(what, check) {
  const deadline = Date.now() + 300_000;
  for (;;) {
    if (await check()) return;
    assert.ok(Date.now() < deadline, `gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function rejects(promise, code) {
  await assert.rejects(promise, (e) => e.name === "GorseException" && e.code === code);
}

test("items: upsert, get, update, categories, list and delete", async () => {
  const id = fresh("js-item");
  const item = {
    ItemId: id,
    IsHidden: false,
    Labels: ["red"],
    Categories: ["phones"],
    Timestamp: "2022-08-07T00:26:46Z",
    Comment: "A phone",
  };
  assert.equal(await client.upsertItem(item), 1);
  assert.deepStrictEqual(await client.getItem(id), item);
  assert.equal(await client.updateItem(id, { ItemId: id, IsHidden: true, Timestamp: "2022-08-08T00:00:00Z" }), 1);
  assert.equal(await client.insertItemCategory(id, "gifts"), 1);
  assert.equal(await client.deleteItemCategory(id, "phones"), 1);
  const changed = await client.getItem(id);
  assert.equal(changed.IsHidden, true);
  assert.equal(changed.Timestamp, "2022-08-08T00:00:00Z");
  assert.deepStrictEqual(changed.Categories, ["gifts"]);
  assert.equal(await client.upsertItems([{ ItemId: `${id}-2` }, { ItemId: `${id}-3` }]), 2);
  const page = await client.getItems({ n: 2 });
  assert.equal(page.Items.length, 2);
  assert.notEqual(page.Cursor, "");
  const next = await client.getItems({ n: 2, Cursor: page.Cursor });
  assert.notDeepStrictEqual(next.Items[0], page.Items[0], "the cursor moves on");
  assert.equal(await client.deleteItem(id), 1);
  await rejects(client.getItem(id), 404);
});

test("users: insert, get, update, list and delete", async () => {
  const id = fresh("js-user");
  assert.equal(await client.insertUser({ UserId: id, Labels: ["a"], Comment: "first" }), 1);
  assert.deepStrictEqual(await client.getUser(id), { UserId: id, Labels: ["a"], Subscribe: null, Comment: "first" });
  assert.equal(await client.updateUser(id, { UserId: id, Comment: "second" }), 1);
  assert.equal((await client.getUser(id)).Comment, "second");
  assert.equal(await client.insertUsers([{ UserId: `${id}-2` }]), 1);
  const page = await client.getUsers({ n: 1 });
  assert.equal(page.Users.length, 1);
  assert.notEqual(page.Cursor, "");
  assert.equal(await client.deleteUser(id), 1);
  await rejects(client.getUser(id), 404);
});

/** Five shoppers who like a also like b; c is liked by more, others. */
async function tastes(prefix) {
  const [a, b, c] = ["a", "b", "c"].map((x) => `${prefix}-${x}`);
  const rows = [];
  for (let u = 0; u < 12; u++) {
    for (const item of u < 5 ? [a, b] : [c]) {
      rows.push({ FeedbackType: "like", UserId: `${prefix}-fan${u}`, ItemId: item, Timestamp: "" });
    }
  }
  assert.equal(await client.insertFeedbacks(rows), rows.length);
  return [a, b, c];
}

test("feedback: insert, upsert, read back; the next recommendation changes", async () => {
  const prefix = fresh("js-shop");
  const [a, b] = await tastes(prefix);
  const user = `${prefix}-newcomer`;
  const before = await client.getRecommend({ userId: user, cursorOptions: { n: 5 } });
  assert.ok(before.length > 0 && before.every((id) => typeof id === "string"), "item ids, as Gorse answers");
  const like = { FeedbackType: "like", UserId: user, ItemId: a, Timestamp: "2026-01-01T00:00:00Z" };
  assert.equal(await client.insertFeedbacks([like]), 1);
  assert.equal(await client.upsertFeedbacks([like]), 1);
  const after = await client.getRecommend({ userId: user, cursorOptions: { n: 5 } });
  assert.notDeepStrictEqual(after, before, "the feedback changes the next list");
  assert.equal(after[0], b, "those who like a like b");
  const one = await client.getFeedback({ type: "like", userId: user, itemId: a });
  assert.equal(one.ItemId, a);
  assert.deepStrictEqual((await client.getUserFeedback(user)).map((f) => f.ItemId), [a]);
  assert.deepStrictEqual((await client.getUserFeedbackByType(user, "like")).map((f) => f.ItemId), [a]);
  const page = await client.getFeedbacks(undefined, { n: 2 });
  assert.equal(page.Feedback.length, 2);
  const likes = await client.getFeedbacks("like", { n: 2 });
  assert.ok(likes.Feedback.every((f) => f.FeedbackType === "like"));
  assert.deepStrictEqual(await client.deleteFeedback({ type: "like", userId: user, itemId: a }), { RowAffected: 1 });
  assert.deepStrictEqual(await client.getUserFeedbackByType(user, "like"), []);
  const onA = await client.getItemFeedback(a);
  assert.ok(onA.length > 0 && onA.every((f) => f.ItemId === a), JSON.stringify(onA));
  assert.ok(!onA.some((f) => f.UserId === user), "the deleted like is not listed");
  const likesOfA = await client.getItemFeedbackByType(a, "like");
  assert.ok(likesOfA.length > 0 && likesOfA.every((f) => f.FeedbackType === "like"), JSON.stringify(likesOfA));
  const near = await client.getUserNeighbors({ userId: onA[0].UserId, cursorOptions: { n: 3 } });
  assert.ok(near.length > 0 && near.every((s) => typeof s.Id === "string" && typeof s.Score === "number"), JSON.stringify(near));
});

test("lists: recommend in a category, neighbors, popular, latest and session", async () => {
  const prefix = fresh("js-lists");
  const [a, b, c] = await tastes(prefix);
  const dated = [
    [a, "x", "2026-01-03T00:00:00Z"],
    [b, "x", "2026-01-01T00:00:00Z"],
    [c, "y", "2026-01-02T00:00:00Z"],
  ];
  for (const [id, category, ts] of dated) {
    await client.upsertItem({ ItemId: id, IsHidden: false, Categories: [category], Timestamp: ts });
  }
  const inX = await client.getRecommend({ userId: `${prefix}-fan7`, category: "x", cursorOptions: { n: 10 } });
  assert.ok(inX.length > 0, "a and b are in x and fan7 has liked neither");
  for (const id of inX) {
    assert.deepStrictEqual((await client.getItem(id)).Categories, ["x"]);
  }
  const neighbors = await client.getItemNeighbors({ itemId: a, cursorOptions: { n: 1 } });
  assert.equal(neighbors[0].Id, b);
  await eventually("c among the popular items", async () => {
    const popular = await client.getPopular({ cursorOptions: { n: 100 } });
    assert.ok(popular.every((s) => typeof s.Id === "string" && typeof s.Score === "number"));
    return popular.some((s) => s.Id === c);
  });
  const latestX = await client.getLatest({ category: "x" });
  const ours = latestX.filter((s) => s.Id === a || s.Id === b);
  assert.deepStrictEqual(ours.map((s) => s.Id), [a, b], "newest first");
  assert.equal(ours[0].Score, Date.parse("2026-01-03T00:00:00Z") / 1000, "scored by the timestamp, in seconds");
  const session = await client.getSessionRecommend([{ FeedbackType: "like", UserId: "", ItemId: a, Timestamp: "2026-01-05T00:00:00Z" }], {
    cursorOptions: { n: 3 },
  });
  assert.equal(session[0].Id, b);
  assert.ok(session.every((s) => s.Id !== a), "the session's own items are left out");
});
