// The map's layers and the layer tree: everything comes from this server (tiles, terrain, 3D Tiles, GeoJSON).

import { api } from "./api.js";

const C = window.Cesium;
export const PARCELS_MAX_HEIGHT = 60000; // metres above ground: parcels are drawn only when zoomed in this far

const HAZARD_COLOURS = { 特大型: "#b71c1c", 大型: "#e53935", 中型: "#fb8c00", 小型: "#fdd835" };

function hazardSymbol(colour) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 26;
  const g = canvas.getContext("2d");
  g.beginPath();
  g.moveTo(13, 2); g.lineTo(24, 23); g.lineTo(2, 23); g.closePath();
  g.fillStyle = colour; g.fill();
  g.lineWidth = 2; g.strokeStyle = "#111"; g.stroke();
  g.fillStyle = "#111"; g.font = "bold 14px sans-serif"; g.textAlign = "center"; g.fillText("!", 13, 21);
  return canvas;
}

function mapProvider(path, rectangle) {
  return new C.UrlTemplateImageryProvider({
    url: path, rectangle, minimumLevel: 0, maximumLevel: 18, tileWidth: 256, tileHeight: 256,
    hasAlphaChannel: true, credit: "OneMap Twin",
  });
}

// One toggleable layer: `apply(visible)` shows or hides what it drew.
class Layer {
  constructor(id, zh, en, { available = true, visible = true, note = "" } = {}) {
    Object.assign(this, { id, zh, en, available, wanted: visible, note });
    this.apply = () => {};
  }
  set(visible) {
    this.wanted = visible;
    if (this.available) this.apply(visible);
  }
}

export class LayerSet {
  // mapLayers: the layers the server composites into one tile, bottom first (/viewer/defaults.json); the page
  // draws the visible ones as ONE imagery layer (in software WebGL each imagery layer costs every frame).
  constructor(viewer, manifest, { year, region, mapLayers }) {
    this.viewer = viewer;
    this.manifest = manifest;
    this.mapLayers = mapLayers;
    this.year = year;
    this.region = region;
    this.layers = new Map();
    this.tileset = null;
    this.terrainProvider = null;
    this.mapLayer = null;
    this.mapUrl = null;
    this.changed = new C.Event();
  }

  get(id) { return this.layers.get(id); }
  // What the department's grants let it see (the manifest says, per layer).
  granted(id) { return Boolean(this.manifest.layers?.[id]); }
  visibleIds() { return [...this.layers.values()].filter((l) => l.wanted).map((l) => l.id); }

  add(layer) { this.layers.set(layer.id, layer); return layer; }

  async build() {
    const { viewer, manifest } = this;
    const scene = viewer.scene;
    const maps = Boolean(manifest.maptiles);

    const base = this.add(new Layer("base", "底图", "Natural Earth II"));
    base.apply = (v) => { viewer.imageryLayers.get(0).show = v; };

    this.addMapLayer("imagery", "遥感影像", "imagery (STAC)", this.options("imagery", maps));

    const terrain = this.add(new Layer("terrain", "地形", "terrain (DEM)", {
      available: Boolean(manifest.terrain?.available), note: manifest.terrain?.warning ?? "",
    }));
    if (terrain.available) {
      this.terrainProvider = await C.CesiumTerrainProvider.fromUrl("/twin/terrain/");
      terrain.apply = (v) => {
        scene.terrainProvider = v ? this.terrainProvider : new C.EllipsoidTerrainProvider();
      };
    }

    this.addMapLayer("parcels", "地块", "parcels by land class", this.options("parcels", maps,
      "放大后显示 · shown when zoomed in"));
    this.addMapLayer("control_lines", "三条控制线", "control lines", this.options("control_lines", maps));
    this.addMapLayer("conflicts", "冲突图斑", "conflicts", this.options("conflicts", maps));

    const buildings = this.add(new Layer("buildings", "建筑", "buildings (3D Tiles)", this.granted("buildings") ? {
      available: Boolean(manifest.buildings?.tileset),
      note: manifest.buildings ? `${manifest.buildings.count ?? "?"} 栋 buildings` : "尚未生成 · not built yet",
    } : this.options("buildings", true)));
    if (buildings.available) {
      this.tileset = await C.Cesium3DTileset.fromUrl(`/twin/${manifest.buildings.tileset}`, {
        maximumScreenSpaceError: 16,
      });
      scene.primitives.add(this.tileset);
      buildings.apply = (v) => { this.tileset.show = v; };
    }

    const hazards = this.add(new Layer("hazards", "地灾隐患点", "hazard points", this.options("hazards", maps)));
    if (hazards.available) {
      const source = await this.hazardSource();
      await viewer.dataSources.add(source);
      hazards.apply = (v) => { source.show = v; };
    }

    const districts = this.add(new Layer("districts", "区县", "districts", this.options("districts", true)));
    if (districts.available) {
      const districtSource = await this.districtSource(maps);
      await viewer.dataSources.add(districtSource);
      districts.apply = (v) => { districtSource.show = v; };
    }
  }

  // A layer is available when the server can draw it and the department was granted its table.
  options(id, drawable, note = "") {
    if (!this.granted(id)) return { available: false, note: "未授权 · not granted to your department" };
    return { available: drawable, note };
  }

  addMapLayer(id, zh, en, options) {
    this.add(new Layer(id, zh, en, options)).apply = () => this.updateMaps();
  }

  setYear(year) {
    this.year = year;
    this.updateMaps();
    this.changed.raiseEvent();
  }

  // The visible map layers as one composited imagery layer above the base map, replaced when the set (or the
  // survey year of the parcels in it) changes; parcels only when the camera is low enough to read them.
  updateMaps() {
    const low = this.viewer.camera.positionCartographic.height < PARCELS_MAX_HEIGHT;
    const ids = this.mapLayers.filter((id) => this.get(id)?.wanted && this.get(id).available &&
      (id !== "parcels" || low));
    const query = ids.includes("parcels") && this.year ? `?year=${this.year}` : "";
    const url = ids.length ? `/twin/overlay/${ids.join(",")}/{z}/{x}/{y}.png${query}` : null;
    if (url === this.mapUrl) return;
    if (this.mapLayer) this.viewer.imageryLayers.remove(this.mapLayer, true);
    this.mapUrl = url;
    this.mapLayer = url ? this.viewer.imageryLayers.addImageryProvider(mapProvider(url, this.region), 1) : null;
    this.viewer.scene.requestRender();
  }

  async hazardSource() {
    const source = new C.CustomDataSource("hazards");
    const collection = await api.layer("hazard_points");
    const symbols = {};
    for (const feature of collection.features) {
      const [lon, lat] = feature.geometry.coordinates;
      const p = feature.properties ?? {};
      const colour = HAZARD_COLOURS[p.scale] ?? "#fb8c00";
      symbols[colour] ??= hazardSymbol(colour);
      source.entities.add({
        id: `hazard:${p.hazard_id ?? `${lon},${lat}`}`,
        position: C.Cartesian3.fromDegrees(lon, lat),
        billboard: {
          image: symbols[colour], verticalOrigin: C.VerticalOrigin.BOTTOM,
          heightReference: C.HeightReference.CLAMP_TO_GROUND, disableDepthTestDistance: Number.POSITIVE_INFINITY,
          scaleByDistance: new C.NearFarScalar(2e3, 1.0, 5e5, 0.5),
        },
        properties: { kind: "hazard", ...p },
      });
    }
    return source;
  }

  async districtSource(maps) {
    const source = new C.CustomDataSource("districts");
    const districts = await api.districts();
    for (const d of districts) {
      source.entities.add({
        id: `district:${d.code}`,
        position: C.Cartesian3.fromDegrees(d.centre[0], d.centre[1]),
        label: {
          text: d.name, font: "14px sans-serif", fillColor: C.Color.WHITE, outlineColor: C.Color.BLACK,
          outlineWidth: 3, style: C.LabelStyle.FILL_AND_OUTLINE, heightReference: C.HeightReference.CLAMP_TO_GROUND,
          disableDepthTestDistance: Number.POSITIVE_INFINITY, translucencyByDistance:
            new C.NearFarScalar(5e4, 1.0, 2.5e6, 0.0),
        },
        properties: { kind: "district", district_code: d.code, name: d.name },
      });
    }
    if (maps) {
      const outlines = await api.layer("districts");
      for (const feature of outlines.features) {
        const g = feature.geometry;
        const polygons = g.type === "Polygon" ? [g.coordinates] : g.coordinates;
        polygons.forEach((rings) => source.entities.add({
          polyline: {
            positions: C.Cartesian3.fromDegreesArray(rings[0].flat()), width: 1.5, clampToGround: true,
            material: C.Color.fromCssColorString("#9ecbff").withAlpha(0.8),
          },
        }));
      }
    }
    return source;
  }

  renderTree(list) {
    list.replaceChildren();
    for (const layer of this.layers.values()) {
      const item = document.createElement("li");
      item.dataset.layer = layer.id;
      if (!layer.available) item.classList.add("unavailable");
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = layer.wanted && layer.available;
      box.disabled = !layer.available;
      box.addEventListener("change", () => this.show(layer.id, box.checked));
      label.append(box, `${layer.zh} `, Object.assign(document.createElement("span"), {
        className: "en", textContent: layer.en,
      }));
      item.append(label);
      if (layer.note) item.append(Object.assign(document.createElement("div"), {
        className: "note", textContent: layer.note,
      }));
      list.append(item);
    }
  }

  // Show or hide one layer (the tree, tests) and tell the permalink.
  show(id, visible) {
    this.get(id).set(visible);
    this.viewer.scene.requestRender();
    this.changed.raiseEvent();
  }

  // Apply the wanted visibility (from the permalink or the defaults) to every layer.
  applyAll(visible) {
    for (const layer of this.layers.values()) layer.set(visible ? visible.includes(layer.id) : layer.wanted);
    this.viewer.scene.requestRender();
  }
}
