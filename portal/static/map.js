// kouiki portal: the map of point datasets (Leaflet + Leaflet.markercluster, vendored under /static/vendor/).
// The markers come from each release's GeoJSON (the same file the public downloads); the list of points beside
// the map is in the page itself, so the points stay reachable without this script, a mouse or a tile server.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const element = document.getElementById("map");
  if (!element || typeof L === "undefined") return;
  const data = element.dataset;
  // no animations: they fade the cluster counts (low contrast while they run) and move things under the
  // pointer of people who asked for reduced motion
  const map = L.map(element, {zoomControl: false, minZoom: 4, maxZoom: 18, fadeAnimation: false,
                              zoomAnimation: false, markerZoomAnimation: false});
  L.control.zoom({zoomInTitle: data.zoomIn, zoomOutTitle: data.zoomOut}).addTo(map);
  map.attributionControl.setPrefix('<a href="https://leafletjs.com/">Leaflet</a>');
  map.setView([36.2, 138.3], 5);   // Japan, until the points are loaded
  if (data.tiles) {
    L.tileLayer(data.tiles, {
      maxZoom: 18, minZoom: 4,
      attribution: `<a href="${escapeHtml(data.attributionUrl)}">${escapeHtml(data.attribution)}</a>`,
    }).addTo(map);
  }
  const clusters = L.markerClusterGroup({showCoverageOnHover: false, maxClusterRadius: 50, animate: false});
  map.addLayer(clusters);

  const layers = Array.from(document.querySelectorAll(".map-list-title"));
  const markers = layers.map(() => []);
  Promise.all(layers.map((heading, index) => loadLayer(heading, index)))
    .then(() => {
      const total = markers.reduce((n, list) => n + list.length, 0);
      if (total > 0) map.fitBounds(clusters.getBounds(), {padding: [24, 24], maxZoom: 15});
      element.dataset.markers = String(total);
      element.dataset.ready = "true";
    })
    .catch((error) => {
      element.dataset.ready = "error";
      const message = document.createElement("p");
      message.className = "map-fallback";
      message.textContent = data.lang === "en" ? "The map could not be loaded; use the list of points."
        : "地図を読み込めませんでした。地点の一覧をご利用ください。";
      element.appendChild(message);
      console.error(error);
    });

  function loadLayer(heading, index) {
    return fetch(heading.dataset.source, {headers: {Accept: "application/geo+json"}})
      .then((response) => {
        if (!response.ok) throw new Error(`${heading.dataset.source}: HTTP ${response.status}`);
        return response.json();
      })
      .then((geojson) => {
        const added = [];
        // one marker colour per dataset (the same class tints its marker in the list's heading)
        const icon = new L.Icon.Default({className: `layer-${index % 4}`});
        for (const feature of geojson.features || []) {
          const point = pointOf(feature);
          if (!point) continue;    // rows without coordinates: in the files, not on the map (as in the list)
          const props = feature.properties || {};
          const name = String(props["名称"] || props["施設名"] || props["ID"] || "");
          const marker = L.marker(point, {icon, title: name, alt: name, keyboard: true});
          marker.bindPopup(() => popup(props, name, heading));
          added.push(marker);
        }
        markers[index] = added;
        clusters.addLayers(added);
      });
  }

  function pointOf(feature) {
    // the same rule as portal/geo.py, so that the n-th button of the list is the n-th marker
    const geometry = feature && feature.geometry;
    if (!geometry || geometry.type !== "Point" || !Array.isArray(geometry.coordinates)) return null;
    const [lon, lat] = geometry.coordinates;
    if (typeof lon !== "number" || typeof lat !== "number") return null;
    return [lat, lon];
  }

  function popup(props, name, heading) {
    const box = document.createElement("div");
    const title = document.createElement("strong");
    title.textContent = name;
    box.appendChild(title);
    const address = props["所在地_連結表記"] || props["住所"];
    if (address) {
      const line = document.createElement("div");
      line.textContent = String(address);
      box.appendChild(line);
    }
    const link = document.createElement("a");
    link.href = heading.dataset.link;
    link.textContent = `${heading.textContent.trim()}（${data.linkLabel}）`;
    box.appendChild(link);
    return box;
  }

  // A point chosen in the list: the map centres on it and shows its popup (a popup of the map, not of the
  // marker, so that it opens whether or not the marker is inside a cluster); a live region says so.
  const status = document.getElementById("map-status");
  for (const button of document.querySelectorAll("button.point")) {
    button.addEventListener("click", () => {
      const marker = (markers[Number(button.dataset.layer)] || [])[Number(button.dataset.index)];
      if (!marker) return;
      map.setView(marker.getLatLng(), Math.max(map.getZoom(), 17));
      L.popup({offset: [0, -30]}).setLatLng(marker.getLatLng()).setContent(marker.getPopup().getContent()())
        .openOn(map);
      if (status) status.textContent = `${data.shown}: ${button.textContent}`;
      element.scrollIntoView({block: "nearest"});
    });
  }
});

function escapeHtml(text) {
  return String(text || "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
