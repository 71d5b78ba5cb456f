// The map page: asks for the read token once (kept in sessionStorage, sent
// only in the Authorization header), fetches the kept activities as GeoJSON
// from /api/activities and draws them with Leaflet over OpenStreetMap
// tiles, with a list beside the map. Tracks are vector layers, so they are
// drawn even when the tiles cannot load.
"use strict";

(function () {
  const tokenKey = "stravahook.readToken";
  const apiURL = "/api/activities?format=geojson&limit=1000";

  // Colours by sport_type (falling back to type), in families.
  const sportColours = [
    [/^(Run|TrailRun|VirtualRun)$/, "#e8590c", "run"],
    [/Ride$|^Velomobile$|^Handcycle$/, "#1c7ed6", "ride"],
    [/^(Walk|Hike|Snowshoe)$/, "#2b8a3e", "walk / hike"],
    [/Swim$/, "#0c8599", "swim"],
    [/Ski|Snowboard/, "#7048e8", "snow"],
    [/Row|Kayak|Canoe|Surf|Sail|StandUpPaddling/, "#c2255c", "water"],
  ];
  const otherColour = "#495057";

  const el = (id) => document.getElementById(id);
  const status = el("status");

  function colourOf(props) {
    const sport = props.sport_type || props.type || "";
    for (const [re, colour] of sportColours) {
      if (re.test(sport)) return colour;
    }
    return otherColour;
  }

  function km(m) {
    return (m / 1000).toFixed(m < 10000 ? 2 : 1) + " km";
  }

  function duration(s) {
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const two = (n) => String(n).padStart(2, "0");
    return (h > 0 ? h + ":" + two(m) : String(m)) + ":" + two(sec);
  }

  // One formatter for every date: building one per call (what
  // toLocaleString does) was most of the time to list 1,000 activities.
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  function when(iso) {
    const d = new Date(iso);
    return isNaN(d) ? iso : dateFormat.format(d);
  }

  // Text only: activity names come from athletes and are never HTML.
  function line(cls, text) {
    const div = document.createElement("div");
    div.className = cls;
    div.textContent = text;
    return div;
  }

  function popupContent(p) {
    const div = document.createElement("div");
    div.className = "popup";
    div.append(
      line("name", p.name || "(untitled)"),
      line("meta", (p.sport_type || p.type) + " · " + when(p.start_date)),
      line("meta", km(p.distance_m) + " · moving " + duration(p.moving_time_s)));
    return div;
  }

  const map = L.map("map", { worldCopyJump: true }).setView([20, 0], 2);
  const tiles = L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png", {
    maxZoom: 19,
    attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
  }).addTo(map);
  let tilesFailed = false;
  tiles.on("tileerror", () => {
    if (tilesFailed) return;
    tilesFailed = true;
    if (window.mapStats) status.textContent = describe(window.mapStats);
  });
  const tracks = L.featureGroup().addTo(map);

  function askToken(message) {
    sessionStorage.removeItem(tokenKey);
    el("forget").hidden = true;
    const err = el("login-error");
    err.textContent = message || "";
    err.hidden = !message;
    el("login").hidden = false;
    el("token").value = "";
    el("token").focus();
    status.textContent = "Waiting for the read token…";
  }

  el("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = el("token").value.trim();
    if (!token) return;
    sessionStorage.setItem(tokenKey, token);
    el("login").hidden = true;
    load(token);
  });

  el("forget").addEventListener("click", () => {
    tracks.clearLayers();
    el("list").replaceChildren();
    askToken();
  });

  async function load(token) {
    status.textContent = "Loading the activities…";
    const t0 = performance.now();
    let res;
    try {
      res = await fetch(apiURL, {
        headers: { Authorization: "Bearer " + token, Accept: "application/geo+json" },
        cache: "no-cache",
        credentials: "omit",
      });
    } catch (e) {
      status.textContent = "Cannot reach /api/activities: " + e.message;
      return;
    }
    if (res.status === 401) {
      askToken("That token was refused. Check READ_TOKEN and try again.");
      return;
    }
    if (res.status === 404) {
      askToken("The read API is off on this deployment: set READ_TOKEN (16 characters or more) and redeploy.");
      return;
    }
    if (!res.ok) {
      let reason = res.statusText;
      try { reason = (await res.json()).error || reason; } catch (e) { /* not JSON */ }
      status.textContent = "/api/activities answered " + res.status + ": " + reason;
      return;
    }
    const collection = await res.json();
    const t1 = performance.now();
    draw(collection.features || []);
    // Wait for the browser to lay out and paint the tracks.
    requestAnimationFrame(() => setTimeout(() => {
      const t2 = performance.now();
      window.mapStats = {
        activities: collection.features.length,
        tracks: tracks.getLayers().length,
        fetchMs: Math.round(t1 - t0),
        drawMs: Math.round(t2 - t1),
      };
      status.textContent = describe(window.mapStats);
      document.body.dataset.drawn = "true";
    }, 0));
  }

  function describe(s) {
    let text = s.activities + " activities, " + s.tracks + " with a track · fetched in " + s.fetchMs +
      " ms, drawn in " + s.drawMs + " ms";
    if (tilesFailed) text += " · map tiles could not load (offline?): tracks are drawn without the background";
    return text;
  }

  function draw(features) {
    // The tracks go on the map once it shows where they are: added at the
    // world view first, every path was projected and drawn twice.
    tracks.remove();
    tracks.clearLayers();
    const list = el("list");
    const rows = [];
    // One GeoJSON layer for every track; each feature's own layer is kept
    // for its row in the list.
    const layerOf = new Map();
    L.geoJSON(features.filter((f) => f.geometry), {
      style: (f) => ({ color: colourOf(f.properties || {}), weight: 3, opacity: 0.85, className: "track" }),
      pointToLayer: (f, latlng) => L.circleMarker(latlng, { radius: 5, color: colourOf(f.properties || {}), className: "track" }),
      onEachFeature: (f, layer) => {
        layer.bindPopup(() => popupContent(f.properties || {}));
        layerOf.set(f, layer);
        tracks.addLayer(layer);
      },
    });
    for (const f of features) {
      const p = f.properties || {};
      const colour = colourOf(p);
      const li = document.createElement("li");
      li.className = "activity";
      li.style.setProperty("--sport", colour);
      li.dataset.id = String(f.id);
      li.append(
        line("name", p.name || "(untitled)"),
        line("meta", when(p.start_date) + " · " + (p.sport_type || p.type)),
        line("meta", km(p.distance_m) + " · moving " + duration(p.moving_time_s)));
      const layer = layerOf.get(f);
      if (layer) {
        li.addEventListener("click", () => {
          for (const other of list.querySelectorAll("li.selected")) other.classList.remove("selected");
          li.classList.add("selected");
          if (layer.getBounds) {
            map.fitBounds(layer.getBounds(), { padding: [30, 30], maxZoom: 16 });
            layer.openPopup(layer.getBounds().getCenter());
          } else {
            map.setView(layer.getLatLng(), 15);
            layer.openPopup();
          }
        });
      } else {
        li.classList.add("no-track");
        li.append(line("meta", "no track (indoor or private map)"));
      }
      rows.push(li);
    }
    list.replaceChildren(...rows);
    const bounds = tracks.getBounds();
    if (bounds.isValid()) {
      map.fitBounds(bounds, { padding: [20, 20], maxZoom: 15, animate: false });
    }
    tracks.addTo(map);
    el("forget").hidden = false;
  }

  const saved = sessionStorage.getItem(tokenKey);
  if (saved) {
    load(saved);
  } else {
    askToken();
  }
})();
