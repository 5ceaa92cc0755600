// recordkit join page (meetings.md §8): one RTCPeerConnection, one offer, no trickle ICE, no renegotiation.
//
// The server gives each receive section (`recvonly` or `sendrecv`) one other participant's track of its
// kind, in join order, so we offer a fixed number of them up front; the server pushes who is on which
// section (server-sent events on `peers/{id}/slots/events`) as people arrive and leave, to label the tiles.

const RECEIVE_SECTIONS = 8; // per kind, our own sendrecv section included: room for 8 others
const SLOT_STREAM_RETRY_MS = 1000;
const ICE_GATHERING_TIMEOUT_MS = 5000;

const meetingId = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] ?? '');
const token = new URLSearchParams(location.search).get('authToken') ?? '';

const ui = {
  status: document.getElementById('status'),
  error: document.getElementById('error'),
  grid: document.getElementById('grid'),
  local: document.getElementById('local'),
  mic: document.getElementById('mic'),
  cam: document.getElementById('cam'),
  leave: document.getElementById('leave'),
  sound: document.getElementById('sound'),
};

const pc = new RTCPeerConnection({ iceServers: [] }); // no outside STUN: the server answers with its own candidates
const tiles = new Map(); // video mid -> { figure, video, caption }
const speakers = new Map(); // audio mid -> <audio>
let slots = new Map(); // mid -> { participantId, name, kind }, from the server
let localStream = null;
const slotStream = new AbortController(); // aborted on hang-up

// What the end-to-end tests read; `state` is starting | joining | joined | left | failed.
const page = { state: 'starting', peerId: null, stats: statsSummary };
window.recordkit = page;

function setState(state, text) {
  page.state = state;
  document.body.dataset.state = state;
  ui.status.textContent = text;
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
}

function fail(message) {
  setState('failed', 'Not connected');
  showError(message);
  hangUp();
}

class ServerError extends Error {
  constructor(status, message) {
    super(`${message} (HTTP ${status})`);
    this.status = status;
  }
}

// Signalling calls take the token as a Bearer header, so it never lands in a URL the server logs.
// (That is why the slot stream is read with fetch: EventSource cannot send headers.)
function call(method, path, body, options = {}) {
  return fetch(`/meet/${encodeURIComponent(meetingId)}/${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    ...options,
  });
}

async function serverError(response) {
  const envelope = await response.json().catch(() => null);
  return new ServerError(response.status, envelope?.error?.message ?? response.statusText);
}

async function request(method, path, body, options = {}) {
  const response = await call(method, path, body, options);
  if (!response.ok) throw await serverError(response);
  const envelope = await response.json().catch(() => null);
  if (!envelope?.success) throw new ServerError(response.status, envelope?.error?.message ?? response.statusText);
  return envelope.data;
}

const post = (path, body, options) => request('POST', path, body, options);

async function join() {
  if (!token) {
    fail('This link has no authToken. Ask whoever invited you for a new meeting link.');
    return;
  }
  setState('starting', 'Asking for camera and microphone…');
  try {
    localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } });
  } catch (err) {
    fail(`Cannot use your camera or microphone: ${err.message || err.name}. Allow access and reload the page.`);
    return;
  }
  ui.local.srcObject = localStream;

  setState('joining', 'Joining…');
  try {
    addTransceivers();
    await pc.setLocalDescription();
    await iceGatheringComplete();
    const answer = await post('offer', { type: 'offer', sdp: pc.localDescription.sdp });
    page.peerId = answer.peer_id;
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
  } catch (err) {
    fail(`Could not join the meeting: ${err.message}`);
    return;
  }
  for (const transceiver of pc.getTransceivers()) attachReceiver(transceiver);
  for (const button of [ui.mic, ui.cam, ui.leave]) button.disabled = false;
  followSlots();
}

function addTransceivers() {
  const [audioTrack] = localStream.getAudioTracks();
  const [videoTrack] = localStream.getVideoTracks();
  pc.addTransceiver(audioTrack ?? 'audio', { direction: 'sendrecv', streams: [localStream] });
  pc.addTransceiver(videoTrack ?? 'video', { direction: 'sendrecv', streams: [localStream] });
  for (let i = 1; i < RECEIVE_SECTIONS; i += 1) {
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
  }
  // The server forwards video without re-encoding and accepts VP8 from publishers: ask for it first.
  const capabilities = RTCRtpReceiver.getCapabilities?.('video');
  if (capabilities && 'setCodecPreferences' in RTCRtpTransceiver.prototype) {
    const vp8First = [...capabilities.codecs].sort(
      (a, b) => Number(b.mimeType === 'video/VP8') - Number(a.mimeType === 'video/VP8'),
    );
    for (const t of pc.getTransceivers()) {
      if (t.receiver.track.kind === 'video') t.setCodecPreferences(vp8First);
    }
  }
}

// No trickle ICE: the offer must carry every candidate, so wait until gathering is done.
function iceGatheringComplete() {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== 'complete') return;
      pc.removeEventListener('icegatheringstatechange', done);
      resolve();
    };
    pc.addEventListener('icegatheringstatechange', done);
    // Host candidates come in milliseconds; never hang the join on a slow interface.
    setTimeout(resolve, ICE_GATHERING_TIMEOUT_MS);
  });
}

// Every receive section gets its element now; tiles stay hidden until the server puts someone there.
function attachReceiver(transceiver) {
  const { mid, receiver } = transceiver;
  if (!['recvonly', 'sendrecv'].includes(transceiver.currentDirection)) return; // the server sends nothing here
  const stream = new MediaStream([receiver.track]);
  if (receiver.track.kind === 'audio') {
    const audio = new Audio();
    audio.srcObject = stream;
    speakers.set(mid, audio);
    playAudio(audio);
    return;
  }
  const figure = document.createElement('figure');
  figure.className = 'tile remote';
  figure.dataset.mid = mid;
  figure.hidden = true;
  const video = document.createElement('video');
  // Sound comes from the audio elements; a muted video may always autoplay.
  Object.assign(video, { autoplay: true, muted: true, playsInline: true, srcObject: stream });
  const caption = document.createElement('figcaption');
  figure.append(video, caption);
  ui.grid.append(figure);
  tiles.set(mid, { figure, video, caption });
}

// Browsers may refuse sound until the user touches the page; then offer a button for it.
function playAudio(audio) {
  audio.play().catch(() => {
    ui.sound.hidden = false;
  });
}

ui.sound.addEventListener('click', () => {
  ui.sound.hidden = true;
  for (const audio of speakers.values()) playAudio(audio);
});

pc.addEventListener('connectionstatechange', () => {
  if (page.state === 'left' || page.state === 'failed') return;
  const state = pc.connectionState;
  if (state === 'connected') setState('joined', 'In the meeting');
  else if (state === 'disconnected') setState('joining', 'Connection interrupted, reconnecting…');
  else if (state === 'failed') fail('The connection to the meeting was lost. Reload the page to rejoin.');
});

// Reads the slot stream for as long as we are in the meeting. The server ends it when our peer is gone;
// asking again then answers 401/403/404 and we say so. Anything else (a network blip) is retried.
async function followSlots() {
  const path = `peers/${encodeURIComponent(page.peerId)}/slots/events`;
  while (page.state !== 'left' && page.state !== 'failed') {
    try {
      const response = await call('GET', path, undefined, { signal: slotStream.signal });
      if (!response.ok) throw await serverError(response);
      await readEvents(response.body, (name, data) => {
        if (name !== 'slots') return;
        slots = parseSlots(JSON.parse(data));
        renderTiles();
      });
    } catch (err) {
      if (slotStream.signal.aborted) return;
      if (err instanceof ServerError && [401, 403, 404].includes(err.status)) {
        fail(`You are no longer in the meeting: ${err.message}`);
        return;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, SLOT_STREAM_RETRY_MS));
  }
}

// Calls `onEvent(name, data)` for each event of a `text/event-stream` body until it ends.
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += value;
    let end;
    while ((end = buffered.indexOf('\n\n')) !== -1) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, data.join('\n'));
    }
  }
}

// Accepts `{slots: [...]}` or a bare list; each slot names its `mid` and the participant on it.
function parseSlots(data) {
  const list = Array.isArray(data) ? data : (data?.slots ?? []);
  const byMid = new Map();
  for (const slot of list) {
    const who = slot.participant ?? slot;
    const participantId = who.participant_id ?? who.id ?? null;
    if (slot.mid == null || participantId == null) continue;
    byMid.set(String(slot.mid), { participantId, name: who.name ?? who.display_name ?? '', kind: slot.kind });
  }
  return byMid;
}

function renderTiles() {
  for (const [mid, tile] of tiles) {
    const slot = slots.get(mid);
    tile.figure.hidden = !slot;
    tile.caption.textContent = slot ? slot.name || 'Guest' : '';
    tile.figure.dataset.participantId = slot?.participantId ?? '';
  }
}

function toggleTrack(button, track, onText, offText) {
  if (!track) return;
  track.enabled = !track.enabled; // disabled tracks send black frames / silence, no renegotiation needed
  button.setAttribute('aria-pressed', String(!track.enabled));
  button.textContent = track.enabled ? onText : offText;
}

ui.mic.addEventListener('click', () =>
  toggleTrack(ui.mic, localStream?.getAudioTracks()[0], 'Mute mic', 'Unmute mic'),
);
ui.cam.addEventListener('click', () =>
  toggleTrack(ui.cam, localStream?.getVideoTracks()[0], 'Stop camera', 'Start camera'),
);

ui.leave.addEventListener('click', async () => {
  const peerId = page.peerId;
  setState('left', 'You left the meeting');
  hangUp();
  if (peerId) await post('leave', { peer_id: peerId }).catch((err) => showError(`Leaving: ${err.message}`));
});

// Closing the tab is leaving too; keepalive lets the request outlive the page.
window.addEventListener('pagehide', () => {
  if (page.peerId && page.state !== 'left') {
    post('leave', { peer_id: page.peerId }, { keepalive: true }).catch(() => {});
  }
});

function hangUp() {
  slotStream.abort();
  pc.close();
  localStream?.getTracks().forEach((track) => track.stop());
  for (const button of [ui.mic, ui.cam, ui.leave]) button.disabled = true;
  for (const tile of tiles.values()) tile.figure.hidden = true;
  ui.local.closest('figure').hidden = true; // the stopped camera would only show black
}

// A compact view of pc.getStats(): per receive section, who is on it and how much was decoded.
async function statsSummary() {
  const midOfTrack = new Map(pc.getTransceivers().map((t) => [t.receiver.track.id, t.mid]));
  const inbound = [];
  const outbound = [];
  for (const s of (await pc.getStats()).values()) {
    if (s.type === 'inbound-rtp') {
      const mid = s.mid ?? midOfTrack.get(s.trackIdentifier) ?? null;
      const slot = slots.get(mid);
      inbound.push({
        kind: s.kind,
        mid,
        participantId: slot?.participantId ?? null,
        name: slot?.name ?? null,
        packetsReceived: s.packetsReceived ?? 0,
        bytesReceived: s.bytesReceived ?? 0,
        framesDecoded: s.framesDecoded ?? 0,
        pliCount: s.pliCount ?? 0,
        keyFramesDecoded: s.keyFramesDecoded ?? 0,
        frameWidth: s.frameWidth ?? 0,
        frameHeight: s.frameHeight ?? 0,
        totalSamplesReceived: s.totalSamplesReceived ?? 0,
      });
    } else if (s.type === 'outbound-rtp') {
      outbound.push({
        pliCount: s.pliCount ?? 0,
        firCount: s.firCount ?? 0,
        keyFramesEncoded: s.keyFramesEncoded ?? 0,
        kind: s.kind,
        mid: s.mid ?? null,
        packetsSent: s.packetsSent ?? 0,
        bytesSent: s.bytesSent ?? 0,
        framesEncoded: s.framesEncoded ?? 0,
      });
    }
  }
  return { connectionState: pc.connectionState, inbound, outbound };
}

join();
