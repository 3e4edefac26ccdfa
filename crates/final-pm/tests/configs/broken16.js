// Reports an error object, which serialises to {} and so has no message.
module.exports = async function () {
    process.send({ error: new Error('lost in serialisation') });
};
