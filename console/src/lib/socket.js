// The /ws client: authenticates with the in-memory access token in the first frame, resumes
// from the highest event id it has after a reconnect, and hands every event to the subscribers.
// A resume may send again events it already has (ids below `since` published late are replayed
// with them, docs/api.md "Resume"): those are dropped by id.
import { session } from "./api.js";

// Ids kept to recognise a repeat: far more than a resume looks back over.
const SEEN_IDS = 2000;

export function connectSocket(onEvent, onState = () => {}) {
  let ws = null;
  let lastId = 0;
  const seen = new Set();
  let stopped = false;
  let retry = 500;

  function open() {
    if (stopped || !session.token) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${scheme}://${location.host}/ws`);
    ws.onopen = () => {
      const data = { token: session.token };
      if (lastId) data.since = String(lastId);
      ws.send(JSON.stringify({ event: "auth", data }));
    };
    ws.onmessage = (msg) => {
      let frame;
      try { frame = JSON.parse(msg.data); } catch { return; }
      if (frame.id) {
        if (seen.has(frame.id)) return;
        seen.add(frame.id);
        if (seen.size > SEEN_IDS) seen.delete(seen.values().next().value);
        lastId = Math.max(lastId, frame.id);
      }
      if (frame.event === "sync:refetch") lastId = frame.data.lastId;
      if (frame.event === "ready") { retry = 500; onState("live"); }
      onEvent(frame);
    };
    ws.onclose = () => {
      onState("offline");
      if (!stopped) setTimeout(open, (retry = Math.min(retry * 2, 10000)));
    };
  }
  open();
  return {
    send(event, data) {
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ event, data }));
    },
    close() { stopped = true; ws?.close(); },
  };
}
