// The join page's script: preview camera and microphone, join the visit's
// room with a token exchanged for the invite, follow the visit's status,
// leave when the tab closes. Plain ES2017, no build step.
(function () {
  "use strict";

  var root = document.getElementById("join");
  if (!root) { return; } // a closed page has nothing to do

  var invite = root.dataset.invite;
  var mode = root.dataset.mode; // "sandbox" or "twilio"
  var sandboxPath = root.dataset.sandbox;
  var role = root.dataset.role;
  var withWhom = root.dataset.with;
  var isProvider = role === "provider";

  var el = function (id) { return document.getElementById(id); };
  var joinButton = el("join-button");
  var leaveButton = el("leave-button");

  var POLL_MS = 2000;
  // Fetch a fresh token this long before the current one expires (tokens
  // live at most 24 h; a visit that lasts longer needs another), and not
  // more often than every REFRESH_MIN_MS once it is that close.
  var REFRESH_BEFORE_MS = 10 * 60 * 1000;
  var REFRESH_MIN_MS = 5 * 1000;

  var state = {
    stream: null,     // the local camera/microphone stream, when allowed
    grant: null,      // {identity, room, token, expires_at}
    joined: false,
    joining: false,
    room: null,       // the Twilio Video Room (real mode)
    status: null,     // the last GET /v1/join/{invite}/status answer
    closed: false,    // the visit ended or was cancelled: nothing more to do
    pollTimer: 0,
    refreshTimer: 0
  };

  function api(path) { return "/v1/join/" + encodeURIComponent(invite) + path; }

  function setText(id, text) { el(id).textContent = text; }

  // --- camera and microphone ---------------------------------------------

  function explainDeviceError(err) {
    var name = err && err.name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      return "You did not allow the camera or microphone. To be seen and heard, allow them for this site in your browser's settings (the lock or camera icon next to the address), then reload this page. You can still join without them.";
    }
    if (name === "NotFoundError" || name === "OverconstrainedError") {
      return "No camera or microphone was found. You can still join, but the provider will not see or hear you.";
    }
    if (name === "NotReadableError" || name === "AbortError") {
      return "Your camera or microphone is being used by another app. Close that app, then reload this page.";
    }
    return "Your camera and microphone could not be started. You can still join.";
  }

  function preview() {
    var devices = el("devices");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      devices.textContent = "This browser cannot use the camera on this page (it needs a secure https link). You can still join.";
      devices.classList.add("problem");
      return;
    }
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "user" }, audio: true }).then(function (stream) {
      state.stream = stream;
      el("preview").srcObject = stream;
      var hasVideo = stream.getVideoTracks().length > 0, hasAudio = stream.getAudioTracks().length > 0;
      devices.textContent = hasVideo && hasAudio ? "Your camera and microphone are working."
        : hasAudio ? "Your microphone is working; no camera was found." : "Your camera is working; no microphone was found.";
      devices.classList.remove("problem");
    }).catch(function (err) {
      devices.textContent = explainDeviceError(err);
      devices.classList.add("problem");
      document.querySelector(".videos").hidden = true; // no picture to show (yet)
    });
  }

  // --- joining and leaving -------------------------------------------------

  function fetchGrant() {
    return fetch(api(""), { method: "POST" }).then(function (resp) {
      if (resp.status === 410 || resp.status === 404) {
        return pollOnce().then(function () { throw new Error("closed"); });
      }
      if (!resp.ok) { throw new Error("the token request failed (" + resp.status + ")"); }
      return resp.json();
    }).then(function (grant) {
      state.grant = grant;
      scheduleRefresh();
      return grant;
    });
  }

  function scheduleRefresh() {
    clearTimeout(state.refreshTimer);
    if (!state.grant || state.closed) { return; }
    var wait = Date.parse(state.grant.expires_at) - Date.now() - REFRESH_BEFORE_MS;
    state.refreshTimer = setTimeout(function () {
      // The room keeps a connection made with the old token; the fresh one
      // is what a rejoin (after Leave or a dropped connection) uses.
      fetchGrant().catch(function () {
        if (!state.closed) { state.refreshTimer = setTimeout(scheduleRefresh, 60 * 1000); }
      });
    }, Math.min(Math.max(wait, REFRESH_MIN_MS), 0x7fffffff));
  }

  function sandboxParticipants(grant) {
    return sandboxPath + "/rooms/" + encodeURIComponent(grant.room) + "/participants";
  }

  function connect(grant) {
    if (mode === "sandbox") {
      return fetch(sandboxParticipants(grant), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ identity: grant.identity, kind: "browser", token: grant.token })
      }).then(function (resp) {
        if (!resp.ok) { throw new Error("the sandbox room refused the join (" + resp.status + ")"); }
      });
    }
    var tracks = state.stream ? state.stream.getTracks() : [];
    return Twilio.Video.connect(grant.token, { name: grant.room, tracks: tracks }).then(function (room) {
      state.room = room;
      room.participants.forEach(showParticipant);
      room.on("participantConnected", showParticipant);
      room.on("participantDisconnected", function () { if (room.participants.size === 0) { hideRemote(); } });
      room.on("disconnected", function () { state.room = null; if (state.joined) { left("You left the visit."); } });
    });
  }

  function showParticipant(participant) {
    participant.tracks.forEach(function (pub) { if (pub.track) { attach(pub.track); } });
    participant.on("trackSubscribed", attach);
  }

  function attach(track) {
    var box = el("remote-media");
    box.appendChild(track.attach());
    box.hidden = false;
    document.querySelector(".videos").hidden = false;
    el("preview").parentNode.classList.add("with-remote");
  }

  function hideRemote() {
    var box = el("remote-media");
    while (box.firstChild) { box.removeChild(box.firstChild); }
    box.hidden = true;
    el("preview").parentNode.classList.remove("with-remote");
  }

  function join() {
    if (state.joining || state.joined || state.closed) { return; }
    state.joining = true;
    joinButton.disabled = true;
    joinButton.textContent = "Joining…";
    var grant = state.grant && Date.parse(state.grant.expires_at) - Date.now() > REFRESH_BEFORE_MS
      ? Promise.resolve(state.grant) : fetchGrant();
    grant.then(connect).then(function () {
      state.joining = false;
      state.joined = true;
      render();
      pollOnce();
    }).catch(function (err) {
      state.joining = false;
      if (state.closed) { return; }
      joinButton.disabled = false;
      joinButton.textContent = "Try again";
      setText("status", "We could not connect you: " + err.message + ". Check your connection and try again.");
    });
  }

  // leave disconnects from the room. onUnload uses a keepalive request,
  // which the browser completes after the tab is gone.
  function leave(onUnload) {
    if (!state.joined) { return; }
    state.joined = false;
    if (state.room) {
      state.room.disconnect();
      state.room = null;
    } else if (mode === "sandbox" && state.grant) {
      fetch(sandboxParticipants(state.grant) + "/" + encodeURIComponent(state.grant.identity),
        { method: "DELETE", keepalive: !!onUnload }).catch(function () {});
    }
    hideRemote();
  }

  function left(message) {
    leave(false);
    render();
    setText("status", message);
  }

  // --- following the visit -------------------------------------------------

  function pollOnce() {
    return fetch(api("/status"), { cache: "no-store" }).then(function (resp) {
      if (resp.status === 404 || resp.ok) {
        return resp.json().then(function (body) { return { code: resp.status, body: body }; });
      }
      return null; // a hiccup: the next poll tries again
    }).then(function (answer) {
      if (!answer) { return; }
      if (answer.code !== 200) { close("This link is not valid", ""); return; }
      var st = answer.body;
      if (st.phase !== "open") {
        var titles = { cancelled: "This visit was cancelled", expired: "This link has expired" };
        close(titles[st.phase] || "This visit has ended",
          st.phase === "cancelled" ? "Your clinic cancelled this visit. Call them if you need a new appointment." : "Thank you. You can close this page.");
        return;
      }
      state.status = st;
      render();
    }).catch(function () { /* offline for a moment: the next poll tries again */ });
  }

  function poll() {
    pollOnce().then(function () {
      if (!state.closed) { state.pollTimer = setTimeout(poll, POLL_MS); }
    });
  }

  // close turns the page into the closed page: no join button any more.
  function close(title, message) {
    state.closed = true;
    clearTimeout(state.pollTimer);
    clearTimeout(state.refreshTimer);
    // The visit is over: its room has ended and taken everyone out, so
    // there is nothing to leave (in real mode the SDK disconnects itself).
    state.joined = false;
    if (state.room) { state.room.disconnect(); state.room = null; }
    hideRemote();
    if (state.stream) { state.stream.getTracks().forEach(function (t) { t.stop(); }); }
    setText("heading", title);
    setText("status", message);
    ["join-button", "leave-button", "late", "waited", "devices"].forEach(function (id) { el(id).hidden = true; });
    document.querySelector(".videos").hidden = true;
    var note = root.querySelector(".sandbox");
    if (note) { note.hidden = true; }
    root.classList.add("closed");
  }

  function minutes(ms) {
    var m = Math.max(0, Math.floor(ms / 60000));
    return m < 1 ? "less than a minute" : m === 1 ? "1 minute" : m + " minutes";
  }

  function render() {
    if (state.closed) { return; }
    var st = state.status || {};
    var otherHere = isProvider ? st.patient_here : st.provider_here;
    joinButton.hidden = state.joined;
    leaveButton.hidden = !state.joined;
    if (!state.joined && !state.joining) {
      joinButton.disabled = false;
      joinButton.textContent = "Join the visit";
    }
    var late = el("late"), waited = el("waited");
    late.hidden = true;
    waited.hidden = true;
    if (!state.joined) {
      if (otherHere) {
        setText("status", isProvider ? "Your patient is in the waiting room." : withWhom + " is already in the visit. Join now.");
      }
      return;
    }
    if (otherHere) {
      setText("status", isProvider ? "Your patient is here. Your visit has started." : withWhom + " has joined. Your visit has started.");
      return;
    }
    if (isProvider) {
      setText("status", "Your patient has not joined yet.");
      return;
    }
    setText("status", "You are in the waiting room. " + withWhom + " will be with you soon.");
    if (st.waiting_since) {
      waited.textContent = "You have been waiting " + minutes(Date.now() - Date.parse(st.waiting_since)) + ".";
      waited.hidden = false;
    }
    if (st.provider_late) {
      late.textContent = withWhom + " is running a few minutes late. Please stay on this page.";
      late.hidden = false;
    }
  }

  joinButton.addEventListener("click", join);
  leaveButton.addEventListener("click", function () { left("You left the visit. You can join again while it lasts."); });
  window.addEventListener("pagehide", function () { leave(true); });

  preview();
  poll();
})();
