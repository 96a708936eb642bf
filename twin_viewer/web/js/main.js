// OneMap Twin viewer: CesiumJS served by our own server, no Cesium ion, no CDN, no request to any other host.
// window.twin reports readiness (globe tiles, buildings tileset, panels) for tests and benchmarks.

import { api, RULE_LABELS } from "./api.js";
import { IndicatorPanel } from "./indicators.js";
import { LayerSet } from "./layers.js";
import { AttributePanel } from "./panel.js";
import { cameraView, readHash, setCamera, writeHash } from "./permalink.js";

const C = window.Cesium;
const $ = (id) => document.getElementById(id);
const HIGHLIGHT = C.Color.fromCssColorString("#ffd54f");

const twin = {
  ready: false, globeLoaded: false, tilesetLoaded: false, dataLoaded: false, loadedAt: null, viewer: null,
  selected: null, errors: [], marks: {},
};
const mark = (name) => { twin.marks[name] ??= Math.round(performance.now()); };
window.twin = twin;

function createViewer() {
  C.Ion.defaultAccessToken = ""; // never used: no ion imagery, terrain or geocoder below
  const viewer = new C.Viewer("globe", {
    baseLayer: C.ImageryLayer.fromProviderAsync(
      C.TileMapServiceImageryProvider.fromUrl(C.buildModuleUrl("Assets/Textures/NaturalEarthII"))),
    terrainProvider: new C.EllipsoidTerrainProvider(),
    baseLayerPicker: false, geocoder: false, homeButton: false, sceneModePicker: false, navigationHelpButton: false,
    animation: false, timeline: false, fullscreenButton: false, infoBox: false, selectionIndicator: false,
    requestRenderMode: true, maximumRenderTimeChange: Infinity, skyBox: false,
    msaaSamples: 1, orderIndependentTranslucency: false, // both cost whole extra passes in software WebGL
  });
  if (viewer.scene.moon) viewer.scene.moon.show = false;
  viewer.scene.globe.maximumScreenSpaceError = 3; // a little coarser than 2: a third fewer tiles in software WebGL
  viewer.scene.globe.preloadAncestors = false; // the first view needs its own tiles, not their parents first
  if (softwareWebGL(viewer.scene)) tuneForSoftwareWebGL(viewer);
  viewer.scene.globe.depthTestAgainstTerrain = true;
  viewer.scene.globe.baseColor = C.Color.fromCssColorString("#0b1a2a");
  return viewer;
}

// Software WebGL (SwiftShader: headless browsers, machines without a GPU) draws a frame in about half a second.
function softwareWebGL(scene) {
  const gl = scene.context._gl; // eslint-disable-line no-underscore-dangle
  const info = gl.getExtension("WEBGL_debug_renderer_info");
  const renderer = info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
  return /swiftshader|llvmpipe|software/i.test(String(renderer));
}

// Half the pixels per frame, coarser globe tiles (screen-space error 4), and let each frame process tile loads for
// up to 200 ms instead of CesiumJS's 5 ms: with slow frames the default slice, not the network, decides how long
// the first view takes (measured, 100k buildings and 1M parcels: 61 s → about 12 s). `_loadQueueTimeSlice` is
// CesiumJS's own setting, not exposed on Globe.
// The first view waits for a chain of frames (terrain, then imagery, then their textures), each drawn by
// SwiftShader: the sky and ground atmosphere were about half of a frame's cost, so a plain sky colour instead.
function tuneForSoftwareWebGL(viewer) {
  viewer.resolutionScale = 0.5;
  viewer.scene.skyAtmosphere.show = false;
  viewer.scene.globe.showGroundAtmosphere = false;
  viewer.scene.backgroundColor = C.Color.fromCssColorString("#24466b");
  viewer.scene.globe.maximumScreenSpaceError = 4;
  const surface = viewer.scene.globe._surface; // eslint-disable-line no-underscore-dangle
  if (surface && "_loadQueueTimeSlice" in surface) surface._loadQueueTimeSlice = 200; // eslint-disable-line
  twin.softwareWebGL = true;
}

function trackReadiness(viewer, layers) {
  const scene = viewer.scene;
  const update = () => {
    const tileset = layers.tileset;
    twin.globeLoaded = scene.globe.tilesLoaded;
    twin.tilesetLoaded = !tileset || !tileset.show || tileset.tilesLoaded;
    const ready = twin.dataLoaded && twin.globeLoaded && twin.tilesetLoaded;
    if (twin.globeLoaded) mark("globe");
    if (layers.tileset && twin.tilesetLoaded) mark("tileset");
    if (ready && !twin.ready) {
      twin.loadedAt ??= performance.now();
      $("status").textContent = `已加载 Loaded in ${(twin.loadedAt / 1000).toFixed(1)} s`;
      $("status").classList.add("done");
    }
    twin.ready = ready;
  };
  scene.postRender.addEventListener(update);
  scene.globe.tileLoadProgressEvent.addEventListener((queued) => {
    if (!twin.ready) $("status").textContent = `加载中 Loading… ${queued}`;
    scene.requestRender();
  });
  if (layers.tileset) {
    layers.tileset.allTilesLoaded.addEventListener(() => { scene.requestRender(); });
    layers.tileset.initialTilesLoaded.addEventListener(() => { scene.requestRender(); });
  }
}

// Look at a point on the ground (its height sampled from the terrain) from a heading, pitch and range.
async function lookAtGround(viewer, terrainProvider, { lon, lat, range, heading, pitch }) {
  let height = 0;
  if (terrainProvider) {
    const [sample] = await C.sampleTerrainMostDetailed(terrainProvider, [C.Cartographic.fromDegrees(lon, lat)]);
    height = Number.isFinite(sample.height) ? sample.height : 0;
  }
  viewer.camera.lookAt(C.Cartesian3.fromDegrees(lon, lat, height),
    new C.HeadingPitchRange(C.Math.toRadians(heading), C.Math.toRadians(pitch), range));
  viewer.camera.lookAtTransform(C.Matrix4.IDENTITY);
}

function flyToPlace(viewer, place, { duration = 1.5, minRange = 300 } = {}) {
  const [w, s, e, n] = place.bbox ?? [place.centre[0], place.centre[1], place.centre[0], place.centre[1]];
  const centre = place.centre ?? [(w + e) / 2, (s + n) / 2];
  const corner = C.Cartesian3.fromDegrees(w, s);
  const middle = C.Cartesian3.fromDegrees(centre[0], centre[1]);
  const radius = Math.max(C.Cartesian3.distance(corner, C.Cartesian3.fromDegrees(e, n)) / 2, 1);
  viewer.camera.flyToBoundingSphere(new C.BoundingSphere(middle, radius), {
    duration, offset: new C.HeadingPitchRange(0, C.Math.toRadians(-45), Math.max(radius * 2.6, minRange)),
  });
}

function showTabFactory() {
  const show = (name) => {
    for (const b of document.querySelectorAll(".tabs button")) b.classList.toggle("active", b.dataset.tab === name);
    $("tab-attributes").hidden = name !== "attributes";
    $("tab-indicators").hidden = name !== "indicators";
    twin.tab = name;
  };
  for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => {
    show(b.dataset.tab);
    twin.onViewChange?.();
  });
  return show;
}

function wirePicking(viewer, layers, panel) {
  const scene = viewer.scene;
  const handler = new C.ScreenSpaceEventHandler(scene.canvas);
  let hovered = null;
  let hoveredColour = null;

  const selectBuilding = async (id) => {
    twin.selected = id;
    try {
      panel.building(await api.building(id));
    } catch (error) {
      panel.message(`建筑 ${id}: ${error.message}`);
    }
  };
  twin.selectBuilding = selectBuilding;

  handler.setInputAction(async (click) => {
    const picked = scene.pick(click.position);
    if (picked instanceof C.Cesium3DTileFeature) {
      await selectBuilding(String(picked.getProperty("building_id")));
      return;
    }
    const entity = picked?.id;
    if (entity instanceof C.Entity && entity.properties?.kind?.getValue() === "hazard") {
      const props = entity.properties.getValue(C.JulianDate.now());
      twin.selected = props.hazard_id;
      panel.show(`地灾隐患点 Hazard ${props.hazard_id ?? ""}`, props);
      return;
    }
    const ray = viewer.camera.getPickRay(click.position);
    const ground = ray && scene.globe.pick(ray, scene);
    if (!ground) return;
    const where = C.Cartographic.fromCartesian(ground);
    const lon = C.Math.toDegrees(where.longitude);
    const lat = C.Math.toDegrees(where.latitude);
    try {
      const row = await api.parcelAt(lon, lat, layers.year);
      twin.selected = row.parcel_id ?? null;
      panel.show(`地块 Parcel ${row.parcel_id ?? ""}`, row);
      // the one-map row and every survey year, when the lake has them
      if (row.parcel_id) panel.parcel(await api.parcel(row.parcel_id).catch(() => ({ ...row, survey: [] })));
    } catch (error) {
      panel.message(`${lon.toFixed(5)}, ${lat.toFixed(5)}: ${error.status === 404 ? "此处无地块 no parcel here" :
        error.message}`);
    }
  }, C.ScreenSpaceEventType.LEFT_CLICK);

  let pending = null;
  handler.setInputAction((move) => {
    pending = move.endPosition;
    requestAnimationFrame(() => {
      if (!pending) return;
      const picked = scene.pick(pending);
      pending = null;
      const feature = picked instanceof C.Cesium3DTileFeature ? picked : null;
      if (feature === hovered) return;
      if (hovered) hovered.color = hoveredColour;
      hovered = feature;
      if (feature) {
        hoveredColour = C.Color.clone(feature.color);
        feature.color = HIGHLIGHT;
      }
      scene.canvas.style.cursor = feature ? "pointer" : "";
      scene.requestRender();
    });
  }, C.ScreenSpaceEventType.MOUSE_MOVE);
}

function wireSearch(viewer, panel) {
  const form = $("search");
  const input = $("search-input");
  const list = $("search-results");
  const choose = async (hit) => {
    list.hidden = true;
    flyToPlace(viewer, hit, { minRange: hit.kind === "district" ? 20000 : 400 });
    if (hit.kind === "building") await twin.selectBuilding(hit.id);
    else if (hit.kind === "parcel") panel.parcel(await api.parcel(hit.id));
    else panel.show(`区县 District ${hit.label}`, { district_code: hit.id, name: hit.label });
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    const { results } = await api.search(q).catch((error) => ({
      results: [{ kind: "", label: error.message }],
    }));
    if (results.length === 1) {
      await choose(results[0]);
      return;
    }
    list.replaceChildren(...(results.length ? results : [{ kind: "", label: "无结果 nothing found" }]).map((hit) => {
      const li = document.createElement("li");
      li.append(Object.assign(document.createElement("span"), { className: "kind", textContent: hit.kind }),
        hit.label);
      if (hit.centre) li.addEventListener("click", () => choose(hit));
      return li;
    }));
    list.hidden = false;
  });
  document.addEventListener("click", (event) => { if (!form.contains(event.target)) list.hidden = true; });
}

async function loadConflicts(viewer, panel) {
  const { total, conflicts } = await api.conflicts(100);
  $("conflict-count").textContent = `${conflicts.length} / ${total}`;
  $("conflict-list").replaceChildren(...conflicts.map((c) => {
    const li = document.createElement("li");
    li.className = c.severity;
    li.dataset.id = c.conflict_id;
    const area = c.area_m2 >= 1e4 ? `${(c.area_m2 / 1e4).toFixed(2)} 公顷 ha` : `${c.area_m2.toFixed(0)} m²`;
    li.append(RULE_LABELS[c.rule_id] ?? c.rule_id, Object.assign(document.createElement("div"), {
      className: "meta", textContent: `${c.district_code} · ${c.parcel_id ?? c.building_id ?? ""} · ${area}`,
    }));
    li.addEventListener("click", () => {
      flyToPlace(viewer, c, { minRange: 800 });
      twin.selected = c.conflict_id;
      panel.show(`冲突 Conflict · ${RULE_LABELS[c.rule_id] ?? c.rule_id}`, c, [], c.conflict_id);
    });
    return li;
  }));
}

function renderLegend(entries) {
  $("legend").replaceChildren(...entries.map((e) => {
    const span = document.createElement("span");
    span.title = `${e.code} ${e.name} · ${e.name_en}`;
    span.append(Object.assign(document.createElement("i"), { style: `background:${e.color}` }), e.name);
    return span;
  }));
}

// Who is signed in, beside the sign-out button (an unauthenticated page has already gone to the sign-in page).
function showSignedIn(who) {
  $("who-name").textContent = who.department;
  $("who").title = who.expires_at ? `会话至 session until ${who.expires_at}` : "";
  $("who").hidden = false;
  twin.department = who.department;
}

async function main() {
  mark("script");
  showSignedIn(await api.session());
  const viewer = createViewer();
  twin.viewer = viewer;
  const hash = readHash();
  if (hash.view) setCamera(viewer.camera, hash.view);

  // Without a permalink the page opens on the server's default view (its map tiles are rendered at server start)
  // with every layer shown.
  const [manifest, defaults] = await Promise.all([api.manifest(), api.defaults()]);
  mark("manifest");
  const years = manifest.survey_years ?? [];
  const year = years.includes(hash.year) ? hash.year : years.at(-1);
  const region = manifest.region ? C.Rectangle.fromDegrees(manifest.region.west, manifest.region.south,
    manifest.region.east, manifest.region.north) : undefined;
  const layers = new LayerSet(viewer, manifest, { year, region, mapLayers: defaults.map_layers });
  twin.layers = layers;
  await layers.build();
  mark("layers");
  if (!hash.view) await lookAtGround(viewer, layers.terrainProvider, defaults.target);
  layers.applyAll(hash.layers);
  layers.renderTree($("layer-tree"));
  trackReadiness(viewer, layers);

  const showTab = showTabFactory();
  const panel = new AttributePanel($("attributes"), showTab);
  wirePicking(viewer, layers, panel);
  wireSearch(viewer, panel);

  const yearSelect = $("year-select");
  yearSelect.replaceChildren(...years.map((y) => Object.assign(document.createElement("option"), {
    value: y, textContent: y, selected: y === year,
  })));
  yearSelect.disabled = years.length === 0;
  yearSelect.addEventListener("change", () => layers.setYear(Number(yearSelect.value)));

  const indicators = new IndicatorPanel(
    { select: $("indicator-select"), chart: $("indicator-chart"), note: $("indicator-note") },
    (code) => {
      const d = twin.districts.find((x) => x.code === code);
      if (d) flyToPlace(viewer, d, { minRange: 20000 });
    });

  const granted = manifest.layers ?? {};
  const [indicatorData, districts, legend] = await Promise.all([
    api.indicators().catch((error) => ({ missing: error.message })),
    granted.districts ? api.districts() : Promise.resolve([]),
    manifest.maptiles && granted.parcels ? api.legend() : Promise.resolve([]),
    loadConflicts(viewer, panel).catch((error) => { $("conflict-count").textContent = error.message; })]);
  twin.districts = districts;
  if (indicatorData.missing) $("indicator-note").textContent = indicatorData.missing;
  else indicators.load(indicatorData);
  renderLegend(legend);
  showTab(hash.tab === "indicators" ? "indicators" : "attributes");

  const remember = () => writeHash({ view: cameraView(viewer.camera), layers: layers.visibleIds(),
    year: layers.year, tab: twin.tab });
  twin.onViewChange = remember;
  viewer.camera.moveEnd.addEventListener(remember);
  viewer.camera.changed.addEventListener(() => layers.updateMaps());
  layers.changed.addEventListener(remember);
  $("permalink").addEventListener("click", async () => {
    remember();
    await navigator.clipboard?.writeText(window.location.href).catch(() => {});
    $("status").classList.remove("done");
    $("status").textContent = "链接已复制 Link copied";
  });

  // Test and benchmark hooks: where a place is on screen, and layer switches without clicking the tree.
  twin.screenPosition = (lon, lat, height = 0) => {
    const p = C.SceneTransforms.worldToWindowCoordinates(viewer.scene, C.Cartesian3.fromDegrees(lon, lat, height));
    return p ? { x: p.x, y: p.y } : null;
  };
  twin.lookAt = (target) => lookAtGround(viewer, layers.terrainProvider, target);
  twin.setLayer = (id, visible) => {
    layers.show(id, visible);
    layers.renderTree($("layer-tree"));
  };
  twin.dataLoaded = true;
  mark("panels");
  viewer.scene.requestRender();
}

main().catch((error) => {
  twin.errors.push(String(error?.stack ?? error));
  $("status").textContent = `错误 Error: ${error.message}`;
  console.error(error);
});
