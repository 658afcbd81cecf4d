-- The operator's own plugin (a Kong plugin as the PDK documents it: handler + schema).
local MyPlugin = {
  PRIORITY = 900,
  VERSION = "1.0.0",
}

function MyPlugin:access(conf)
  kong.service.request.set_header("X-My-Plugin", conf.tag)
end

return MyPlugin
