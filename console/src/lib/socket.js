// The /ws client: authenticates with the in-memory access token in the first frame, resumes
// from the last event id after a reconnect, and hands every event to the subscribers.
import { session } from "./api.js";

export function connectSocket(onEvent, onState = () => {}) {
  let ws = null;
  let lastId = null;
  let stopped = false;
  let retry = 500;

  function open() {
    if (stopped || !session.token) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${scheme}://${location.host}/ws`);
    ws.onopen = () => {
      const data = { token: session.token };
      if (lastId) data.since = lastId;
      ws.send(JSON.stringify({ event: "auth", data }));
    };
    ws.onmessage = (msg) => {
      let frame;
      try { frame = JSON.parse(msg.data); } catch { return; }
      if (frame.id) lastId = String(frame.id);
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
