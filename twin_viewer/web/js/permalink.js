// The view in the URL hash: #view=lon,lat,height,heading,pitch,roll&layers=a,b&year=2023&tab=indicators
// (degrees, metres). Written on every camera stop or layer change, read once on load.

const C = window.Cesium;

export function readHash(hash = window.location.hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const state = {};
  const view = params.get("view")?.split(",").map(Number);
  if (view && view.length === 6 && view.every(Number.isFinite)) {
    const [lon, lat, height, heading, pitch, roll] = view;
    state.view = { lon, lat, height, heading, pitch, roll };
  }
  if (params.has("layers")) state.layers = params.get("layers").split(",").filter(Boolean);
  const year = Number(params.get("year"));
  if (Number.isInteger(year) && year > 0) state.year = year;
  if (params.get("tab")) state.tab = params.get("tab");
  return state;
}

export function cameraView(camera) {
  const c = camera.positionCartographic;
  return {
    lon: C.Math.toDegrees(c.longitude), lat: C.Math.toDegrees(c.latitude), height: c.height,
    heading: C.Math.toDegrees(camera.heading), pitch: C.Math.toDegrees(camera.pitch),
    roll: C.Math.toDegrees(camera.roll),
  };
}

export function setCamera(camera, view) {
  camera.setView({
    destination: C.Cartesian3.fromDegrees(view.lon, view.lat, view.height),
    orientation: {
      heading: C.Math.toRadians(view.heading), pitch: C.Math.toRadians(view.pitch),
      roll: C.Math.toRadians(view.roll),
    },
  });
}

export function writeHash({ view, layers, year, tab }) {
  const v = view;
  const parts = [
    `view=${[v.lon, v.lat].map((x) => x.toFixed(6)).join(",")},${v.height.toFixed(1)},` +
      [v.heading, v.pitch, v.roll].map((x) => x.toFixed(2)).join(","),
    `layers=${layers.join(",")}`,
  ];
  if (year) parts.push(`year=${year}`);
  if (tab) parts.push(`tab=${tab}`);
  const hash = `#${parts.join("&")}`;
  if (hash !== window.location.hash) window.history.replaceState(null, "", hash);
  return hash;
}
