// JSON from the twin's own server (/twin/api); errors carry the server's description. Every call rides on the
// session cookie set by the sign-in page; a 401 (no session, or it ended) sends the browser there, coming back to
// this very view afterwards.

export function toSignIn() {
  const here = window.location.pathname + window.location.hash;
  window.location.replace(`/viewer/signin?next=${encodeURIComponent(here)}`);
}

export async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (response.status === 401) {
    toSignIn();
    return new Promise(() => {}); // the page is going away: nothing after this call should run
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(body?.description ?? `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

export const api = {
  session: () => getJson("/viewer/session"),
  manifest: () => getJson("/twin/api/manifest"),
  defaults: () => getJson("/viewer/defaults.json"),
  districts: () => getJson("/twin/api/districts"),
  indicators: () => getJson("/twin/api/indicators"),
  conflicts: (limit = 200) => getJson(`/twin/api/conflicts?limit=${limit}`),
  legend: () => getJson("/twin/api/legend"),
  building: (id) => getJson(`/twin/api/buildings/${encodeURIComponent(id)}`),
  parcel: (id) => getJson(`/twin/api/parcels/${encodeURIComponent(id)}`),
  parcelAt: (lon, lat, year) =>
    getJson(`/twin/api/parcel_at?lon=${lon.toFixed(7)}&lat=${lat.toFixed(7)}${year ? `&year=${year}` : ""}`),
  search: (q) => getJson(`/twin/api/search?q=${encodeURIComponent(q)}`),
  layer: (name) => getJson(`/twin/api/layers/${name}.geojson`),
};

// Chinese labels for the attributes the panel shows (English is the field name itself).
export const FIELD_LABELS = {
  building_id: "建筑编号", name: "名称", function: "用途", storeys: "层数", height_m: "高度 (m)",
  district_code: "区县代码", lod: "细节层次", source_format: "来源格式", source_crs: "来源坐标系", area_m2: "面积 (m²)",
  source: "来源文件", ingested_at: "入湖时间", parcel_id: "地块编号", parcel_number: "图斑号", survey_year: "调查年度",
  land_class_code: "地类编码", land_class_name: "地类名称", land_class_name_en: "land class", group_name: "一级类",
  three_category: "三大类", net_area_m2: "净面积 (m²)", urban_rural_code: "城乡代码",
  ecological_red_line_m2: "生态保护红线内 (m²)", permanent_basic_farmland_m2: "永久基本农田内 (m²)",
  urban_development_boundary_m2: "城镇开发边界内 (m²)", building_count: "建筑数", building_footprint_m2: "建筑占地 (m²)",
  latest_scene_id: "最新影像", latest_scene_datetime: "影像时间", hazards_within_200m: "200 m 内地灾点",
  conflict_rules: "冲突规则", conflict_id: "冲突编号", rule_id: "规则", severity: "严重程度", hazard_id: "隐患点编号",
  hazard_type: "灾种", scale: "规模", threatened_people: "威胁人数", monitoring_level: "监测等级",
  deduction_factor: "扣除系数", deduction_area_m2: "扣除面积 (m²)", reported_area_m2: "报送面积 (m²)",
  locating_unit_code: "座落单位代码", is_construction: "建设用地", is_cultivated: "耕地",
};

export const RULE_LABELS = {
  CONFLICT_CULTIVATED_TO_CONSTRUCTION: "耕地转建设 · cultivated → construction",
  CONFLICT_CONSTRUCTION_OUTSIDE_URBAN_BOUNDARY: "城镇开发边界外建设 · construction outside urban boundary",
  CONFLICT_CONSTRUCTION_IN_RED_LINE: "红线内建设 · construction in ecological red line",
  CONFLICT_NON_FARM_USE_IN_BASIC_FARMLAND: "基本农田非农使用 · non-farm use in basic farmland",
};
