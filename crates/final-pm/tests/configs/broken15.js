// Sends an extra message besides the exported configuration.
module.exports = async function () {
    process.send({});
};
